"""The `.scn` parser: one step per line, errors as file:line:col and what was expected."""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from harness.scenario import (
    DEFAULT_SPEC,
    INJECTED_VERBS,
    LOCAL_CONNECTION_VERBS,
    UNCHECKED,
    AcceptStep,
    AckStep,
    BindStep,
    CloseStep,
    ConnectStep,
    GetsocknameStep,
    InuseStep,
    KernelRange,
    ListenStep,
    QueueStep,
    Scenario,
    SetsockoptStep,
    ShutdownStep,
    SocketStep,
    Step,
    SynOnlyStep,
    SynStep,
    TwStep,
    Version,
    VersionClause,
    VersionSpan,
    version_text,
)
from harness.spec import RECORDED
from model.addr import RawSockAddr, SockAddr, parse_sockaddr
from model.cbpf import parse_program
from model.sockopt import SockOpt, option_int
from model.sysctl import Sysctls
from netns.topology import STANDARD

ERRNO_NAMES = frozenset(errno.errorcode.values())
FAMILIES = {"AF_INET": int(socket.AF_INET), "AF_INET6": int(socket.AF_INET6)}
VERBS = ("socket", "setsockopt", "bind", "listen", "close", "getsockname", "inuse", "syn", "queue",
         "connect", "accept", "tw", "syn_only", "ack", "shutdown")
SYN_ONLY_RESULTS = ("SYNACK", "COOKIE", "RST", "DROP")
NAMING_VERBS = ("socket", "accept")
SYN_RESULTS = ("RST", "DROP")


class ScenarioError(Exception):
    """A problem in a scenario file, located to the column."""

    def __init__(self, path: Path | str, line: int, col: int, message: str):
        if len(message) > MESSAGE_MAX:  # a huge line is quoted in part, never whole
            message = message[:MESSAGE_MAX] + "…"
        super().__init__(f"{path}:{line}:{col}: {message}")
        self.path, self.line, self.col, self.message = path, line, col, message


@dataclass
class Arg:
    """One argument: optional `key=`, its text, and its column (1-based)."""

    key: str | None
    text: str
    col: int


CALL = re.compile(r"\s*(?:(?P<name>[A-Za-z_]\w*)\s*=\s*)?(?P<verb>[A-Za-z_]\w*)\s*\(")
_KERNEL = re.compile(r"(>=|<=|==|!=|>|<)\s*([0-9]{1,3})\.([0-9]{1,3})\s*$")
_EXPECT = re.compile(r"\s*=\s*(\S+)")
_CLAUSE_VALUE = re.compile(r"\s*(\S+)")
_SPACE = re.compile(r"\s*")
_SPAN = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})(?:\s*-\s*([0-9]{1,3})\.([0-9]{1,3}))?")
# the kernel versions a version clause may name: those of the kernels the corpus records
KNOWN_VERSIONS = frozenset(p.version for p in RECORDED)
CLIP = 60  # characters of a bad fragment an error message quotes
MESSAGE_MAX = 400  # characters of an error message at most
MAX_FILE = 64 << 20  # bytes of a scenario file at most
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1  # a C int: what listen(2) takes
# uid_t is a u32 and (uid_t)-1 is INVALID_UID: kernel/sys.c __sys_setresuid refuses a euid
# that make_kuid cannot map (!uid_valid -> EINVAL), so the harness's seteuid could not run it
UID_MAX = (1 << 32) - 2


def _ascii_int(text: str) -> bool:
    """Digits 0-9 only, at most 20 (str.isdigit also takes '²', which int() refuses)."""
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit()


def _clip(text: str) -> str:
    return text if len(text) <= CLIP else text[:CLIP] + "…"


class _Line:
    """Parses one statement line; knows the file and line for errors."""

    def __init__(self, path: Path, lineno: int, text: str):
        self.path, self.lineno, self.text = path, lineno, text

    def error(self, col: int, message: str) -> ScenarioError:
        return ScenarioError(self.path, self.lineno, col, message)


class Parser:
    """Parses a file into a Scenario; tracks which socket names are defined."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()
        self.defined: set[str] = set()
        self.open: set[str] = set()
        self.families: dict[str, int] = {}
        # what connect() cannot model: a socket bound to a device (routing by device) or to a
        # loopback address (loopback sources and TIME_WAIT reuse on loopback depend on more)
        self.unroutable: dict[str, str] = {}
        self.mapped_connect: set[str] = set()
        self.half_open: set[tuple] = set()  # flows a syn_only() opened
        self.shut: set[str] = set()  # sockets shut down (listen() again would resurrect them)
        self.connected: set[str] = set()  # sockets a connect() that may have failed was made on
        self.connected_ok: set[str] = set()  # sockets a connect() stated '= 0' was made on
        self.sysctl_state = Sysctls()  # the settings so far, in the order they are written
        self.sysctl_lines: dict[str, int] = {}  # the line each sysctl is set on

    def parse(self) -> Scenario:
        steps: list[Step] = []
        sysctls: dict[str, str] = {}
        kernel: list[KernelRange] = []
        cpu = 0
        for lineno, raw in enumerate(self.lines, start=1):
            body = raw.split("#", 1)[0].rstrip()
            if not body.strip():
                continue
            ln = _Line(self.path, lineno, raw)
            indent = len(body) - len(body.lstrip())
            if body.lstrip().startswith("@"):
                if steps:
                    raise ln.error(indent + 1, "directives (@…) must come before the first step")
                key, value = self._directive(ln, body, indent)
                if key == "kernel":
                    kernel.append(value)
                elif key == "cpu":
                    cpu = value
                else:
                    sysctls[value[0]] = value[1]
                continue
            steps.append(self._statement(ln, body))
        if not steps:
            raise ScenarioError(self.path, max(len(self.lines), 1), 1, "expected at least one step")
        local = next((s for s in steps if s.verb in LOCAL_CONNECTION_VERBS), None)
        syn = next((s for s in steps if s.verb in INJECTED_VERBS), None)
        if local and syn:
            later = max(local, syn, key=lambda s: s.line)
            raise ScenarioError(self.path, later.line, 1, f"{later.verb}() cannot share a scenario "
                                "with " + (f"{syn.verb}()" if later is local else f"{local.verb}()") +
                                ": the sweep between SYN batches resets every queued connection")
        return Scenario(
            path=self.path, steps=tuple(steps), sysctls=tuple(sysctls.items()),
            kernel=tuple(kernel), cpu=cpu, lines=tuple(self.lines),
        )

    # -- directives ----------------------------------------------------------------------

    def _directive(self, ln: _Line, body: str, indent: int) -> tuple[str, object]:
        word, _, rest = body.strip()[1:].partition(" ")
        rest_col = indent + 2 + len(word) + 1
        rest = rest.strip()
        if word == "kernel":
            m = _KERNEL.match(rest)
            if not m:
                raise ln.error(rest_col, f"expected '@kernel OP X.Y' (OP one of >= <= == != > <), got {rest!r}")
            return "kernel", KernelRange(m.group(1), (int(m.group(2)), int(m.group(3))))
        if word == "cpu":
            if not _ascii_int(rest) or int(rest) > 4095:
                raise ln.error(rest_col, f"expected a CPU number, got {rest!r}")
            return "cpu", int(rest)
        if word == "sysctl":
            key, eq, value = rest.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or not value:
                raise ln.error(rest_col, f"expected '@sysctl net.x.y = value', got {rest!r}")
            if key in self.sysctl_lines:
                raise ln.error(rest_col, f"{key} is already set on line {self.sysctl_lines[key]}; "
                               "set it once (the settings are written in file order)")
            try:
                # as the kernel's handler takes it, after the settings above it (the harness
                # writes them in this order): ip_local_port_range and ip_unprivileged_port_start
                # check each other
                self.sysctl_state = self.sysctl_state.with_setting(key, value)
            except ValueError as e:
                raise ln.error(rest_col, str(e)) from None
            self.sysctl_lines[key] = ln.lineno
            return "sysctl", (key, value)
        raise ln.error(indent + 1, f"unknown directive @{word}; expected @kernel, @sysctl or @cpu")

    # -- statements ----------------------------------------------------------------------

    def _statement(self, ln: _Line, body: str) -> Step:
        m = CALL.match(body)
        if not m:
            col = len(body) - len(body.lstrip()) + 1
            raise ln.error(col, f"expected a call like bind(a, 10.0.0.1:80) or 'a = socket(…)', got {body.strip()!r}")
        verb, name = m.group("verb"), m.group("name")
        if verb not in VERBS:
            raise ln.error(m.start("verb") + 1, f"unknown verb {verb!r}; expected one of {', '.join(VERBS)}")
        if name and verb not in NAMING_VERBS:
            raise ln.error(m.start("name") + 1, f"only socket() and accept() assign a name; {verb}() does not")
        if verb == "socket" and not name:
            raise ln.error(m.start("verb") + 1, "socket() needs a name: 'a = socket(AF_INET, SOCK_STREAM)'")
        if verb == "accept" and not name:
            raise ln.error(m.start("verb") + 1, "accept() needs a name for the new socket: 's = accept(a)'")
        close = body.find(")", m.end())
        if close < 0:
            raise ln.error(len(body) + 1, "expected ')' to close the call")
        args = self._args(body, m.end(), close)
        call = body[m.start("name") if name else m.start("verb") : close + 1].strip()
        expect, versions = self._expectations(ln, verb, body, close + 1)
        step = getattr(self, "_" + verb)(ln, call, expect, name, args, m)
        return dataclasses.replace(step, versions=versions) if versions else step

    def _expectations(self, ln: _Line, verb: str, body: str, start: int
                      ) -> tuple[str | None, tuple[VersionClause, ...]]:
        """What follows the call: `= VALUE` (the default expectation), then version clauses
        `[5.10: VALUE]`, `[5.10, 6.1: VALUE]`, `[5.10-6.12: VALUE]`."""
        expect = None
        pos = start
        em = _EXPECT.match(body, pos)
        if em:
            expect = em.group(1)
            self._check_expect(ln, verb, expect, em.start(1) + 1)
            pos = em.end()
        clauses: list[VersionClause] = []
        covered: dict[Version, str] = {}
        while True:
            ws = _SPACE.match(body, pos)
            pos = ws.end()
            if pos >= len(body):
                break
            if body[pos] != "[":
                want = "a version clause like [5.10: 0]" if em or clauses else \
                    "'= value', a version clause like [5.10: 0] or a comment"
                raise ln.error(pos + 1, f"expected {want} after the call, got {_clip(body[pos:])!r}")
            clause, end = self._clause(ln, verb, body, pos, expect)
            for span in clause.spans:
                for v in KNOWN_VERSIONS:
                    if span.covers(v) and v in covered:
                        raise ln.error(pos + 1, f"version {version_text(v)} is in two clauses "
                                       f"([{covered[v]}] and {clause})")
            for v in KNOWN_VERSIONS:
                if clause.covers(v):
                    covered[v] = clause.label
            clauses.append(clause)
            pos = end
        return expect, tuple(clauses)

    def _clause(self, ln: _Line, verb: str, body: str, pos: int, expect: str | None
                ) -> tuple[VersionClause, int]:
        """One `[VERSIONS: VALUE]` at `pos`, and where it ends; VALUE is one token (it may hold
        brackets: `[5.10: [::]:8080]`)."""
        colon = body.find(":", pos)
        vm = _CLAUSE_VALUE.match(body, colon + 1) if colon > 0 else None
        if vm is None:
            raise ln.error(pos + 1, f"expected '[VERSIONS: value]' like [5.10: 0], got {_clip(body[pos:])!r}")
        versions = body[pos + 1 : colon]
        value, value_col, end = vm.group(1), vm.start(1) + 1, vm.end()
        if not value.endswith("]") or value == "]":
            raise ln.error(value_col, f"expected one value and ']' to close the version clause, got {_clip(value)!r}")
        value = value[:-1]
        if value != UNCHECKED:
            self._check_expect(ln, verb, value, value_col)
        spans: list[VersionSpan] = []
        col = pos + 2
        for part in versions.split(","):
            text = part.strip()
            at = col + (len(part) - len(part.lstrip()))
            spans.append(self._span(ln, text, at))
            col += len(part) + 1
        if any(span.covers(DEFAULT_SPEC) for span in spans):
            raise ln.error(pos + 1, f"a clause cannot cover {version_text(DEFAULT_SPEC)}: its outcome "
                           "is the default expectation (the bare '= value')")
        if value == expect:
            raise ln.error(pos + 1, f"the clause [{', '.join(map(str, spans))}: {value}] repeats "
                           "the default expectation; leave it out")
        return VersionClause(tuple(spans), value), end

    @staticmethod
    def _span(ln: _Line, text: str, col: int) -> VersionSpan:
        m = _SPAN.fullmatch(text)
        if not m:
            raise ln.error(col, f"expected a kernel version X.Y or a range X.Y-X.Y, got {_clip(text)!r}")
        ends = []
        for g in (1, 3):
            if m.group(g) is None:
                continue
            v = (int(m.group(g)), int(m.group(g + 1)))
            if v not in KNOWN_VERSIONS:
                raise ln.error(col + m.start(g), f"no recorded kernel profile for version {version_text(v)}; "
                               f"versions recorded: {', '.join(map(version_text, sorted(KNOWN_VERSIONS)))}")
            ends.append(v)
        low, high = ends[0], ends[-1]
        if high < low:
            raise ln.error(col, f"the range {text} runs backwards")
        return VersionSpan(low, high)

    @staticmethod
    def _args(body: str, start: int, end: int) -> list[Arg]:
        args: list[Arg] = []
        pos = start
        inner = body[start:end]
        if not inner.strip():
            return args
        for part in inner.split(","):
            stripped = part.strip()
            col = pos + (len(part) - len(part.lstrip())) + 1
            key = None
            km = re.match(r"([A-Za-z_]\w*)\s*=\s*(.*)$", stripped)
            if km:
                key, stripped = km.group(1), km.group(2)
            args.append(Arg(key, stripped, col))
            pos += len(part) + 1
        return args

    def _check_expect(self, ln: _Line, verb: str, expect: str, col: int) -> None:
        if verb == "accept":
            if expect not in ERRNO_NAMES and expect not in self.defined:
                try:
                    parse_sockaddr(expect)  # an injected client: address:port
                except ValueError:
                    raise ln.error(col, "expected the name of the connecting socket, a client's "
                                   f"address:port or an errno name, got {expect!r}") from None
            return
        if verb in ("syn", "ack"):
            if expect not in SYN_RESULTS and expect not in self.defined:
                raise ln.error(col, f"expected the name of a socket, RST or DROP, got {expect!r}")
            return
        if verb == "syn_only":
            if expect not in SYN_ONLY_RESULTS:
                raise ln.error(col, f"expected {', '.join(SYN_ONLY_RESULTS)}, got {expect!r}")
            return
        if expect in ERRNO_NAMES:
            if verb == "inuse":
                raise ln.error(col, f"inuse() returns a count, not {expect}")
            return
        if verb in ("socket", "setsockopt", "bind", "listen", "close", "connect", "shutdown"):
            if expect != "0":
                raise ln.error(col, f"expected 0 or an errno name (EADDRINUSE, EINVAL, …), got {expect!r}")
        elif verb in ("inuse", "queue", "tw"):
            if not _ascii_int(expect):
                raise ln.error(col, f"expected a count, got {expect!r}")
        elif verb == "getsockname":
            try:
                parse_sockaddr(expect)
            except ValueError as e:
                raise ln.error(col, f"expected an address:port or errno name: {e}") from None

    def _arity(self, ln: _Line, verb: str, args: list[Arg], m: re.Match, n: int, form: str) -> None:
        positional = [a for a in args if a.key is None]
        if len(positional) != n:
            raise ln.error(m.start("verb") + 1, f"{verb}() takes {n} argument(s): {form}")

    def _sock_ref(self, ln: _Line, arg: Arg) -> str:
        if arg.text not in self.defined:
            raise ln.error(arg.col, f"unknown socket {arg.text!r}; create it first with '{arg.text} = socket(AF_INET, SOCK_STREAM)'")
        return arg.text

    @staticmethod
    def _int(ln: _Line, arg: Arg, what: str) -> int:
        text = arg.text
        if not re.fullmatch(r"-?[0-9]{1,20}", text):
            raise ln.error(arg.col, f"expected {what} (an integer of at most 20 digits), got {_clip(text)!r}")
        return int(text)

    def _no_keywords(self, ln: _Line, args: list[Arg], allowed: tuple[str, ...] = ()) -> None:
        for a in args:
            if a.key is not None and a.key not in allowed:
                hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
                raise ln.error(a.col, f"unknown option {a.key!r}{hint}")

    # -- verbs ---------------------------------------------------------------------------

    def _socket(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args, ("uid",))
        self._arity(ln, "socket", args, m, 2, "socket(AF_INET, SOCK_STREAM[, uid=N])")
        fam, typ = [a for a in args if a.key is None]
        if fam.text not in FAMILIES:
            raise ln.error(fam.col, f"expected a family ({', '.join(FAMILIES)}), got {fam.text!r}")
        if typ.text != "SOCK_STREAM":
            raise ln.error(typ.col, f"expected SOCK_STREAM (TCP is what is modelled), got {typ.text!r}")
        uid = 0
        for a in args:
            if a.key == "uid":
                uid = self._int(ln, a, "a uid")
                if not 0 <= uid <= UID_MAX:
                    raise ln.error(a.col, f"expected a uid 0..{UID_MAX} (uid_t; {UID_MAX + 1} is "
                                   "(uid_t)-1, which seteuid refuses), got " + _clip(a.text))
        if name in self.open:
            raise ln.error(m.start("name") + 1, f"socket {name!r} is still open; close() it before reusing the name")
        self.defined.add(name)
        self.open.add(name)
        self.families[name] = FAMILIES[fam.text]
        self.unroutable.pop(name, None)
        self.mapped_connect.discard(name)
        self.shut.discard(name)
        self.connected.discard(name)
        self.connected_ok.discard(name)
        return SocketStep(ln.lineno, call, expect, name, FAMILIES[fam.text], uid)

    def _setsockopt(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "setsockopt", args, m, 3, "setsockopt(a, SO_REUSEPORT, 1)")
        sock, opt, val = args
        options = {o.name: o for o in SockOpt}
        if opt.text not in options:
            raise ln.error(opt.col, f"unknown option {opt.text!r}; expected one of {', '.join(options)}")
        option = options[opt.text]
        value: object
        if option.kind == "device":
            devices = [d.name for d in STANDARD.devices]
            if val.text != "none" and val.text not in devices:
                raise ln.error(val.col, f"expected a device ({', '.join(devices)}) or none, got {val.text!r}")
            value = "" if val.text == "none" else val.text
            if value:
                self.unroutable[sock.text] = f"bound to device {value}"
        elif option.kind == "portrange":
            lo, dash, hi = val.text.partition("-")
            if not (_ascii_int(lo) and _ascii_int(hi) and dash) or int(lo) > 65535 or int(hi) > 65535:
                raise ln.error(val.col, f"expected a port range LOW-HIGH (0 for no bound), got {val.text!r}")
            value = int(hi) << 16 | int(lo)
        elif option.kind == "program":
            try:
                value = parse_program(val.text)
            except ValueError as e:
                raise ln.error(val.col, str(e)) from None
        else:
            try:  # the 4 bytes the kernel reads as an int
                value = option_int(self._int(ln, val, "an option value"))
            except ValueError as e:
                raise ln.error(val.col, str(e)) from None
        return SetsockoptStep(ln.lineno, call, expect, self._sock_ref(ln, sock), option, value)

    def _bind(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args, ("family", "len"))
        self._arity(ln, "bind", args, m, 2, "bind(a, 10.0.0.1:8080[, family=AF_INET6][, len=16])")
        sock, addr = [a for a in args if a.key is None]
        try:
            sa = parse_sockaddr(addr.text)
        except (ValueError, ipaddress.AddressValueError) as e:
            raise ln.error(addr.col, f"expected an address like 10.0.0.1:8080: {e}") from None
        ref = self._sock_ref(ln, sock)
        raw_family: int | None = None
        raw_len: int | None = None
        for a in args:
            if a.key == "family":
                fams = {"AF_UNSPEC": 0, **FAMILIES}
                if a.text not in fams and not _ascii_int(a.text):
                    raise ln.error(a.col, f"expected {', '.join(fams)} or a number, got {_clip(a.text)!r}")
                raw_family = fams.get(a.text, int(a.text) if _ascii_int(a.text) else 0)
                if raw_family > 0xFFFF:
                    raise ln.error(a.col, "expected a family 0-65535")
            elif a.key == "len":
                raw_len = self._int(ln, a, "an address length")
                if not -1 <= raw_len <= 1024:
                    raise ln.error(a.col, "expected a length -1..1024")
        host = sa.host.ipv4_mapped or sa.host if isinstance(sa.host, ipaddress.IPv6Address) else sa.host
        if host.is_loopback:
            self.unroutable[ref] = f"bound to the loopback address {sa.host}"
        if raw_family is not None or raw_len is not None:
            # the sockaddr as bytes: its family field and length are the step's to choose
            return BindStep(ln.lineno, call, expect, ref, sa, RawSockAddr.of(sa, raw_family, raw_len))
        if sa.family != self.families[ref]:
            fam = "AF_INET6" if self.families[ref] == socket.AF_INET6 else "AF_INET"
            raise ln.error(addr.col, f"{addr.text} does not match {ref}'s family {fam}")
        if sa.family == socket.AF_INET6 and sa.host.is_link_local:
            raise ln.error(addr.col, "link-local addresses (which need a scope id) are not supported")
        return BindStep(ln.lineno, call, expect, ref, sa)

    def _listen(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "listen", args, m, 2, "listen(a, 16)")
        sock, backlog = args
        if sock.text in self.shut:
            raise ln.error(sock.col, "listen() after shutdown() is not modelled (reuseport_resurrect)")
        if sock.text in self.connected and sock.text not in self.connected_ok:
            # af_inet.c:inet_listen is EINVAL unless sock->state is SS_UNCONNECTED, which a
            # refused connect leaves only if the call waited for the RST (__inet_stream_connect,
            # sock_error); one returning early (a signal, the send timeout) leaves SS_CONNECTING.
            # One build here answered EINVAL in 77 of 2,000 fuzz runs, others never: not modelled
            raise ln.error(sock.col, "listen() after a connect() not stated '= 0' on the same socket "
                           "is not modelled (after a refused connect() it is 0 or EINVAL, by whether "
                           "the connect call saw the refusal itself)")
        n = self._int(ln, backlog, "a backlog")
        if not INT_MIN <= n <= INT_MAX:
            # listen(2) takes an int; within it a negative or huge backlog is the kernel's to
            # clamp (__sys_listen_socket: (unsigned int)backlog > somaxconn -> somaxconn)
            raise ln.error(backlog.col, f"expected a backlog that fits a C int ({INT_MIN}..{INT_MAX}), "
                           f"got {_clip(backlog.text)}")
        return ListenStep(ln.lineno, call, expect, self._sock_ref(ln, sock), n)

    def _close(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "close", args, m, 1, "close(a)")
        ref = self._sock_ref(ln, args[0])
        self.open.discard(ref)
        return CloseStep(ln.lineno, call, expect, ref)

    def _getsockname(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "getsockname", args, m, 1, "getsockname(a)")
        return GetsocknameStep(ln.lineno, call, expect, self._sock_ref(ln, args[0]))

    def _inuse(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "inuse", args, m, 1, "inuse(tcp)")
        if args[0].text not in ("tcp", "tcp6"):
            raise ln.error(args[0].col, f"expected tcp or tcp6, got {args[0].text!r}")
        return InuseStep(ln.lineno, call, expect, args[0].text)

    def _queue(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "queue", args, m, 1, "queue(a)")
        return QueueStep(ln.lineno, call, expect, self._sock_ref(ln, args[0]))

    def _connect(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "connect", args, m, 2, "connect(c, 10.0.0.2:80)")
        sock, addr = args
        ref = self._sock_ref(ln, sock)
        if ref in self.unroutable:
            raise ln.error(sock.col, f"connect() of a socket {self.unroutable[ref]} is not modelled "
                           "(its route and source are more than the local table)")
        try:
            sa = parse_sockaddr(addr.text)
        except (ValueError, ipaddress.AddressValueError) as e:
            raise ln.error(addr.col, f"expected an address like 10.0.0.2:80: {e}") from None
        if sa.family != self.families[ref]:
            fam = "AF_INET6" if self.families[ref] == socket.AF_INET6 else "AF_INET"
            raise ln.error(addr.col, f"{addr.text} does not match {ref}'s family {fam}")
        host = sa.host
        if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
            host = host.ipv4_mapped
            self.mapped_connect.add(ref)
        elif isinstance(host, ipaddress.IPv6Address) and ref in self.mapped_connect:
            # tcp_v6_connect switches icsk_af_ops to ipv6_mapped for a v4-mapped peer and
            # restores them only if tcp_v4_connect fails at once, not after a RST
            raise ln.error(addr.col, "connect() to an IPv6 address after a v4-mapped connect() on "
                           "the same socket is not modelled (it keeps the ipv6_mapped operations)")
        if str(host) not in STANDARD.server_addresses:
            # loopback would make TIME_WAIT reuse depend on the clock (tcp_twsk_unique), and
            # other destinations leave the namespace
            raise ln.error(addr.col, f"connect() goes to an address of tun0/tun1 "
                           f"({', '.join(STANDARD.server_addresses)}), got {host}")
        if sa.port == 0:
            raise ln.error(addr.col, "expected a destination port 1-65535")
        if expect == "0":  # stated to succeed: connected, listen() is EINVAL on every kernel
            self.connected_ok.add(ref)
        elif ref not in self.connected_ok:  # not stated to succeed: it may have been refused
            self.connected.add(ref)
        return ConnectStep(ln.lineno, call, expect, ref, sa)

    def _accept(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "accept", args, m, 1, "s = accept(a)")
        ref = self._sock_ref(ln, args[0])
        if name in self.open:
            raise ln.error(m.start("name") + 1, f"socket {name!r} is still open; close() it before reusing the name")
        self.defined.add(name)
        self.open.add(name)
        self.families[name] = self.families[ref]
        return AcceptStep(ln.lineno, call, expect, name, ref)

    def _shutdown(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "shutdown", args, m, 1, "shutdown(a)")
        ref = self._sock_ref(ln, args[0])
        self.shut.add(ref)
        return ShutdownStep(ln.lineno, call, expect, ref)

    def _tw(self, ln, call, expect, name, args, m) -> Step:
        self._no_keywords(ln, args)
        self._arity(ln, "tw", args, m, 0, "tw()")
        return TwStep(ln.lineno, call, expect)

    def _syn_only(self, ln, call, expect, name, args, m) -> Step:
        s = self._syn(ln, call, expect, name, args, m, "syn_only")
        self.half_open.add((s.src, s.dst))
        return SynOnlyStep(s.line, s.call, s.expect, s.src, s.dst, s.payload)

    def _ack(self, ln, call, expect, name, args, m) -> Step:
        s = self._syn(ln, call, expect, name, args, m, "ack")
        if (s.src, s.dst) not in self.half_open:
            raise ln.error(args[0].col, "ack() completes a handshake: send its syn_only() first")
        return AckStep(s.line, s.call, s.expect, s.src, s.dst, s.payload)

    def _syn(self, ln, call, expect, name, args, m, verb: str = "syn") -> SynStep:
        self._no_keywords(ln, args, ("payload",))
        self._arity(ln, verb, args, m, 1, f"{verb}(198.18.0.7:40001 > 10.0.0.1:8080[, payload=N])")
        flow = args[0]
        src_text, gt, dst_text = flow.text.partition(">")
        if not gt:
            raise ln.error(flow.col, "expected 'SRC:PORT > DST:PORT'")
        src = self._flow_addr(ln, src_text, flow.col, "client")
        dst_col = flow.col + len(src_text) + 1 + (len(dst_text) - len(dst_text.lstrip()))
        dst = self._flow_addr(ln, dst_text, dst_col, "server")
        if src.family != dst.family:
            raise ln.error(dst_col, "source and destination must be of one family")
        if STANDARD.client_device(str(src.host)) is None:
            raise ln.error(flow.col, f"{src.host} is in no client range routed to a TUN device "
                           "(198.18.0.0/16, 198.19.0.0/16, 2001:db8::/48, 2001:db8:1::/48)")
        if str(dst.host) not in STANDARD.server_addresses:
            raise ln.error(dst_col, f"{dst.host} is not an address of tun0/tun1 "
                           f"({', '.join(STANDARD.server_addresses)})")
        if src.port == 0 or dst.port == 0:
            raise ln.error(flow.col, "ports of a SYN must be 1-65535")
        payload = 0
        for a in args:
            if a.key == "payload":
                payload = self._int(ln, a, "a payload length")
                if not 0 <= payload <= 1400:
                    raise ln.error(a.col, "expected a payload length 0-1400")
        return SynStep(ln.lineno, call, expect, src, dst, payload)

    @staticmethod
    def _flow_addr(ln: _Line, text: str, col: int, what: str) -> SockAddr:
        try:
            return parse_sockaddr(text.strip())
        except (ValueError, ipaddress.AddressValueError) as e:
            raise ln.error(col, f"expected a {what} address:port: {e}") from None


def parse_text(path: Path | str, text: str) -> Scenario:
    return Parser(Path(path), text.removeprefix("\ufeff")).parse()  # a UTF-8 BOM is no text


def parse_file(path: Path | str) -> Scenario:
    """Parse a file; a missing or unreadable file is a ScenarioError at line 0."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_FILE + 1)  # bounded: /dev/zero, a huge file
        if len(data) > MAX_FILE:
            raise ScenarioError(p, 0, 0, f"larger than {MAX_FILE >> 20} MiB; a scenario is a text file of steps")
        text = data.decode()
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(p, 0, 0, f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    return parse_text(p, text)
