"""The `.scn` parser: one step per line, errors as file:line:col and what was expected."""

from __future__ import annotations

import dataclasses
import errno
import re
from dataclasses import dataclass
from pathlib import Path

from harness.scenario import KernelRange, Scenario
from harness.spec import RECORDED
from harness.steps import STEP_TYPES, Expect, Step
from harness.versions import (
    DEFAULT_SPEC,
    UNCHECKED,
    Version,
    VersionClause,
    VersionSpan,
    version_text,
)
from model.addr import parse_sockaddr
from model.sock import Proto
from model.sysctl import Sysctls

ERRNO_NAMES = frozenset(errno.errorcode.values())
VERBS = tuple(STEP_TYPES)  # in declaration order, as errors list them
_NAMERS = [f"{v}()" for v, t in STEP_TYPES.items() if t.VERB.names]
NAMING = ", ".join(_NAMERS[:-1]) + " and " + _NAMERS[-1]
SYN_ONLY_RESULTS = ("SYNACK", "COOKIE", "RST", "DROP")
SYN_RESULTS = ("RST", "DROP")
DGRAM_RESULTS = ("ICMP", "DROP")


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


@dataclass
class Call:
    """A statement's call as a step type parses it (Step.parse): its arguments, and where its
    parts are for errors."""

    line: _Line
    text: str  # the call's source: 'bind(a, 10.0.0.1:8080)'
    expect: str | None
    name: str | None  # the name it assigns, if any
    args: list[Arg]
    verb_col: int
    name_col: int

    @property
    def lineno(self) -> int:
        return self.line.lineno

    @property
    def positional(self) -> list[Arg]:
        return [a for a in self.args if a.key is None]

    def error(self, col: int, message: str) -> ScenarioError:
        return self.line.error(col, message)


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
        self.maps: set[str] = set()  # sockarray() names
        self.open: set[str] = set()
        self.families: dict[str, int] = {}
        self.protos: dict[str, Proto] = {}
        self.udp_connected: set[str] = set()  # UDP sockets a connect() was made on
        self.udp_shut: set[str] = set()  # UDP sockets a shutdown() was made on
        # what connect() cannot model: a socket bound to a device (routing by device) or to a
        # loopback address (loopback sources and TIME_WAIT reuse on loopback depend on more)
        self.unroutable: dict[str, str] = {}
        self.mapped_connect: set[str] = set()
        self.half_open: set[tuple] = set()  # flows a syn_only() opened
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
        local = next((s for s in steps if s.VERB.local_connection), None)
        syn = next((s for s in steps if s.VERB.injected), None)
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
        if verb not in STEP_TYPES:
            raise ln.error(m.start("verb") + 1, f"unknown verb {verb!r}; expected one of {', '.join(VERBS)}")
        kind = STEP_TYPES[verb]
        declared = kind.VERB
        if name and not declared.names:
            raise ln.error(m.start("name") + 1, f"only {NAMING} assign a name; {verb}() does not")
        if declared.names and not name:
            raise ln.error(m.start("verb") + 1, declared.names)
        close = body.find(")", m.end())
        if close < 0:
            raise ln.error(len(body) + 1, "expected ')' to close the call")
        args = self._args(body, m.end(), close)
        call = body[m.start("name") if name else m.start("verb") : close + 1].strip()
        expect, versions = self._expectations(ln, verb, body, close + 1)
        self._no_keywords(ln, args, declared.keywords)
        c = Call(ln, call, expect, name, args, m.start("verb") + 1, m.start("name") + 1)
        if len(c.positional) != declared.arity:
            raise ln.error(c.verb_col, f"{verb}() takes {declared.arity} argument(s): {declared.form}")
        step = kind.parse(self, c)
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
        """`expect` as a value of the kind the verb declares (Verb.expect)."""
        kind = STEP_TYPES[verb].VERB.expect
        if kind is Expect.PEER:
            if expect not in ERRNO_NAMES and expect not in self.defined:
                try:
                    parse_sockaddr(expect)  # an injected client: address:port
                except ValueError:
                    raise ln.error(col, "expected the name of the connecting socket, a client's "
                                   f"address:port or an errno name, got {expect!r}") from None
        elif kind is Expect.LISTENER:
            if expect not in SYN_RESULTS and expect not in self.defined:
                raise ln.error(col, f"expected the name of a socket, RST or DROP, got {expect!r}")
        elif kind is Expect.RECEIVER:
            if expect not in DGRAM_RESULTS and not (expect in self.defined and self.protos[expect] is Proto.UDP):
                raise ln.error(col, f"expected the name of a UDP socket, ICMP or DROP, got {expect!r}")
        elif kind is Expect.SYN_REPLY:
            if expect not in SYN_ONLY_RESULTS:
                raise ln.error(col, f"expected {', '.join(SYN_ONLY_RESULTS)}, got {expect!r}")
        elif expect in ERRNO_NAMES:
            if kind is Expect.COUNT:
                raise ln.error(col, f"{verb}() returns a count, not {expect}")
        elif kind is Expect.STATUS:
            if expect != "0":
                raise ln.error(col, f"expected 0 or an errno name (EADDRINUSE, EINVAL, …), got {expect!r}")
        elif kind in (Expect.COUNT, Expect.COUNT_OR_ERRNO):
            if not _ascii_int(expect):
                raise ln.error(col, f"expected a count, got {expect!r}")
        elif kind is Expect.ADDRESS:
            try:
                parse_sockaddr(expect)
            except ValueError as e:
                raise ln.error(col, f"expected an address:port or errno name: {e}") from None

    def _no_keywords(self, ln: _Line, args: list[Arg], allowed: tuple[str, ...] = ()) -> None:
        for a in args:
            if a.key is not None and a.key not in allowed:
                hint = f"; allowed: {', '.join(allowed)}" if allowed else ""
                raise ln.error(a.col, f"unknown option {a.key!r}{hint}")

    # -- what step types parse with (Step.parse) -----------------------------------------

    clip = staticmethod(_clip)
    ascii_int = staticmethod(_ascii_int)

    def sock_ref(self, c: Call, arg: Arg) -> str:
        """A socket named by an earlier step."""
        if arg.text not in self.defined:
            raise c.error(arg.col, f"unknown socket {arg.text!r}; create it first with '{arg.text} = socket(AF_INET, SOCK_STREAM)'")
        return arg.text

    @staticmethod
    def integer(c: Call, arg: Arg, what: str) -> int:
        text = arg.text
        if not re.fullmatch(r"-?[0-9]{1,20}", text):
            raise c.error(arg.col, f"expected {what} (an integer of at most 20 digits), got {_clip(text)!r}")
        return int(text)

    def tcp_ref(self, c: Call, arg: Arg, what: str) -> str:
        """A socket named by an earlier step, for a call modelled on TCP sockets only."""
        ref = self.sock_ref(c, arg)
        if self.protos[ref] is not Proto.TCP:
            raise c.error(arg.col, f"{what} of a UDP socket ({ref}) is not modelled yet; "
                          "UDP sockets take socket, setsockopt (not eBPF), bind, listen, "
                          "getsockname, shutdown, close, dgram and inuse(udp)")
        return ref

    def create(self, c: Call, name: str, family: int, fresh: bool = True,
               proto: Proto = Proto.TCP) -> None:
        """A step names a socket: socket() makes a new one (`fresh`, nothing said of an earlier
        socket of that name holds), accept() a connection's child."""
        if name in self.open:
            raise c.error(c.name_col, f"socket {name!r} is still open; close() it before reusing the name")
        if name in self.maps:
            raise c.error(c.name_col, f"{name!r} names a map; a socket needs a name of its own")
        self.defined.add(name)
        self.open.add(name)
        self.families[name] = family
        self.protos[name] = proto
        self.udp_connected.discard(name)
        self.udp_shut.discard(name)
        if fresh:
            self.unroutable.pop(name, None)
            self.mapped_connect.discard(name)
            self.connected.discard(name)
            self.connected_ok.discard(name)


def call_end(body: str) -> int | None:
    """Where a statement's call ends (just past its ')'), or None if `body` holds no call:
    what follows is its expectations."""
    m = CALL.match(body)
    close = body.find(")", m.end()) if m else -1
    return close + 1 if close >= 0 else None


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
