"""The verb table: every step type a `.scn` line can be, each declared once.

A step type declares its verb (`Verb`: the call's shape, the kind of value its `= …` states,
and how the run treats it) and parses its own arguments (`parse`). The parser, both backends and
the reports read these declarations; a backend runs a step with its method `do_<verb>`
(`Executor` checks that one exists for every verb). Adding a verb: docs/design.md, Adding a verb.
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from harness.versions import UNCHECKED, VersionClause
from model.addr import RawSockAddr, SockAddr, parse_sockaddr
from model.cbpf import parse_program
from model.ebpf import parse_ebpf
from model.sock import Proto
from model.sockopt import OptValue, SockOpt, option_int
from netns.topology import STANDARD

if TYPE_CHECKING:
    from harness.parser import Call, Parser

FAMILIES = {"AF_INET": int(socket.AF_INET), "AF_INET6": int(socket.AF_INET6)}
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1  # a C int: what listen(2) takes
# uid_t is a u32 and (uid_t)-1 is INVALID_UID: kernel/sys.c __sys_setresuid refuses a euid
# that make_kuid cannot map (!uid_valid -> EINVAL), so the harness's seteuid could not run it
UID_MAX = (1 << 32) - 2


class Expect(enum.Enum):
    """What a step's `= …` may state (the parser checks each value against its verb's kind)."""

    STATUS = "0 or an errno name"
    COUNT = "a count"  # never an errno: sockstat always reads
    COUNT_OR_ERRNO = "a count or an errno name"
    ADDRESS = "an address:port or an errno name"
    PEER = "the connecting socket's name, a client's address:port or an errno name"
    LISTENER = "a listener's name, RST or DROP"
    SYN_REPLY = "SYNACK, COOKIE, RST or DROP"
    RECEIVER = "a UDP socket's name, ICMP or DROP"


@dataclass(frozen=True)
class Verb:
    """What a step type is, declared once: read by the parser, both backends and the reports."""

    name: str
    form: str  # the call as an example, quoted when its arguments do not fit
    expect: Expect
    arity: int  # positional arguments
    keywords: tuple[str, ...] = ()  # `key=value` arguments it takes
    names: str = ""  # it assigns a name (`a = socket(…)`): the message when none is given
    # Handshakes stay in the accept queues across it; any other step first sweeps them
    # (both backends accept, identify and reset every queued child).
    keeps_queues: bool = False
    injected: bool = False  # a connection from a virtual client through a TUN device
    local_connection: bool = False  # a connection made inside the namespace
    # consecutive ones go to the kernel backend as one injector batch (kernel_backend.wire_of)
    batched: bool = False
    picks_listener: bool = False  # a listener lookup that may pick a reuseport member by hash
    picks_receiver: bool = False  # a UDP receive lookup that may pick one by udp_ehashfn
    leaves_requests: bool = False  # may leave request sockets for their timers
    # No earlier random pick (a port, a listener) decides its outcome (inet_create,
    # do_ip_setsockopt and sk_setsockopt read only the socket itself): `record` keeps its value.
    fixed: bool = False


# Every step type by verb, in declaration order (the order the parser's errors list them).
STEP_TYPES: dict[str, type[Step]] = {}


@dataclass(frozen=True)
class Step:
    """One line of a scenario. `call` is the source text of the call, `expect` the `= …`
    (the default expectation), `versions` the clauses of kernels that differ from it."""

    VERB: ClassVar[Verb]

    line: int
    call: str
    expect: str | None
    versions: tuple[VersionClause, ...] = field(default=(), kw_only=True)

    def __init_subclass__(cls, verb: Verb | None = None, **kw) -> None:
        super().__init_subclass__(**kw)
        if verb is not None:  # a base like FlowStep declares none
            assert verb.name not in STEP_TYPES, f"verb {verb.name} declared twice"
            cls.VERB = verb
            STEP_TYPES[verb.name] = cls

    @property
    def verb(self) -> str:
        return self.VERB.name

    @property
    def named(self) -> str | None:
        """The socket name the step creates, if any (socket, accept)."""
        return getattr(self, "name", None)

    @property
    def uses(self) -> str | None:
        """The socket the step acts on, if any."""
        return getattr(self, "sock", None)

    def expected(self, spec: tuple[int, int]) -> tuple[str | None, str]:
        """The expectation on kernel version `spec`, and where it comes from: the clause's
        versions, or "default" (the bare `= …`)."""
        for clause in self.versions:
            if clause.covers(spec):
                return (None if clause.value == UNCHECKED else clause.value), clause.label
        return self.expect, "default"

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        """The step from its arguments (their count and keywords are checked already)."""
        raise NotImplementedError


def declared(verb: str) -> Verb:
    """The declaration of a verb, by name."""
    return STEP_TYPES[verb].VERB


class Executor:
    """A backend: runs a step with `do_<verb>`. A subclass lacking one for a declared verb is an
    error when it is defined, so a new verb cannot reach a backend that has no method for it."""

    def __init_subclass__(cls, **kw) -> None:
        super().__init_subclass__(**kw)
        missing = [v for v in STEP_TYPES if not callable(getattr(cls, "do_" + v, None))]
        if missing:
            raise TypeError(f"{cls.__name__} has no do_{', do_'.join(missing)}")

    def handler(self, step: Step):
        return getattr(self, "do_" + step.verb)


def _family_name(family: int) -> str:
    return "AF_INET6" if family == socket.AF_INET6 else "AF_INET"


@dataclass(frozen=True)
class SocketStep(Step, verb=Verb(
        "socket", "socket(AF_INET, SOCK_STREAM|SOCK_DGRAM[, uid=N])", Expect.STATUS, 2, ("uid",),
        names="socket() needs a name: 'a = socket(AF_INET, SOCK_STREAM)'", fixed=True)):
    name: str
    family: int
    uid: int
    proto: Proto = Proto.TCP

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        fam, typ = c.positional
        if fam.text not in FAMILIES:
            raise c.error(fam.col, f"expected a family ({', '.join(FAMILIES)}), got {fam.text!r}")
        types = {t.value: t for t in Proto}
        if typ.text not in types:
            raise c.error(typ.col, f"expected a socket type ({', '.join(types)}), got {typ.text!r}")
        uid = 0
        for a in c.args:
            if a.key == "uid":
                uid = p.integer(c, a, "a uid")
                if not 0 <= uid <= UID_MAX:
                    raise c.error(a.col, f"expected a uid 0..{UID_MAX} (uid_t; {UID_MAX + 1} is "
                                  "(uid_t)-1, which seteuid refuses), got " + p.clip(a.text))
        p.create(c, c.name, FAMILIES[fam.text], proto=types[typ.text])
        return cls(c.lineno, c.text, c.expect, c.name, FAMILIES[fam.text], uid, types[typ.text])


@dataclass(frozen=True)
class SetsockoptStep(Step, verb=Verb(
        "setsockopt", "setsockopt(a, SO_REUSEPORT, 1)", Expect.STATUS, 3, fixed=True)):
    sock: str
    option: SockOpt
    value: OptValue

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        sock, opt, val = c.args
        options = {o.name: o for o in SockOpt}
        if opt.text not in options:
            raise c.error(opt.col, f"unknown option {opt.text!r}; expected one of {', '.join(options)}")
        option = options[opt.text]
        if option.kind == "ebpf":
            p.tcp_ref(c, sock, f"setsockopt({option.name})")
        value: object
        if option.kind == "device":
            devices = [d.name for d in STANDARD.devices]
            if val.text != "none" and val.text not in devices:
                raise c.error(val.col, f"expected a device ({', '.join(devices)}) or none, got {val.text!r}")
            value = "" if val.text == "none" else val.text
            if value:
                p.unroutable[sock.text] = f"bound to device {value}"
        elif option.kind == "portrange":
            lo, dash, hi = val.text.partition("-")
            if not (p.ascii_int(lo) and p.ascii_int(hi) and dash) or int(lo) > 65535 or int(hi) > 65535:
                raise c.error(val.col, f"expected a port range LOW-HIGH (0 for no bound), got {val.text!r}")
            value = int(hi) << 16 | int(lo)
        elif option.kind == "program":
            try:
                value = parse_program(val.text)
            except ValueError as e:
                raise c.error(val.col, str(e)) from None
        elif option.kind == "ebpf":
            try:
                value = parse_ebpf(val.text, p.maps)
            except ValueError as e:
                raise c.error(val.col, str(e)) from None
        else:
            try:  # the 4 bytes the kernel reads as an int
                value = option_int(p.integer(c, val, "an option value"))
            except ValueError as e:
                raise c.error(val.col, str(e)) from None
        return cls(c.lineno, c.text, c.expect, p.sock_ref(c, sock), option, value)


@dataclass(frozen=True)
class BindStep(Step, verb=Verb(
        "bind", "bind(a, 10.0.0.1:8080[, family=AF_INET6][, len=16])", Expect.STATUS, 2,
        ("family", "len"))):
    sock: str
    addr: SockAddr
    raw: RawSockAddr | None = None  # family= / len= given: these bytes and length instead

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        sock, addr = c.positional
        try:
            sa = parse_sockaddr(addr.text)
        except (ValueError, ipaddress.AddressValueError) as e:
            raise c.error(addr.col, f"expected an address like 10.0.0.1:8080: {e}") from None
        ref = p.sock_ref(c, sock)
        raw_family: int | None = None
        raw_len: int | None = None
        for a in c.args:
            if a.key == "family":
                fams = {"AF_UNSPEC": 0, **FAMILIES}
                if a.text not in fams and not p.ascii_int(a.text):
                    raise c.error(a.col, f"expected {', '.join(fams)} or a number, got {p.clip(a.text)!r}")
                raw_family = fams.get(a.text, int(a.text) if p.ascii_int(a.text) else 0)
                if raw_family > 0xFFFF:
                    raise c.error(a.col, "expected a family 0-65535")
            elif a.key == "len":
                raw_len = p.integer(c, a, "an address length")
                if not -1 <= raw_len <= 1024:
                    raise c.error(a.col, "expected a length -1..1024")
        host = sa.host.ipv4_mapped or sa.host if isinstance(sa.host, ipaddress.IPv6Address) else sa.host
        if host.is_loopback:
            p.unroutable[ref] = f"bound to the loopback address {sa.host}"
        if raw_family is not None or raw_len is not None:
            # the sockaddr as bytes: its family field and length are the step's to choose
            return cls(c.lineno, c.text, c.expect, ref, sa, RawSockAddr.of(sa, raw_family, raw_len))
        if sa.family != p.families[ref]:
            raise c.error(addr.col, f"{addr.text} does not match {ref}'s family {_family_name(p.families[ref])}")
        if sa.family == socket.AF_INET6 and sa.host.is_link_local:
            raise c.error(addr.col, "link-local addresses (which need a scope id) are not supported")
        if sa.family == socket.AF_INET6 and sa.host.is_multicast and p.protos[ref] is Proto.UDP:
            raise c.error(addr.col, "bind() of a UDP socket to an IPv6 multicast address is not "
                          "modelled yet")
        return cls(c.lineno, c.text, c.expect, ref, sa)


@dataclass(frozen=True)
class ListenStep(Step, verb=Verb("listen", "listen(a, 16)", Expect.STATUS, 2)):
    sock: str
    backlog: int

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        sock, backlog = c.args
        if sock.text in p.connected and sock.text not in p.connected_ok:
            # af_inet.c:inet_listen is EINVAL unless sock->state is SS_UNCONNECTED, which a
            # refused connect leaves only if the call waited for the RST (__inet_stream_connect,
            # sock_error); one returning early (a signal, the send timeout) leaves SS_CONNECTING.
            # One build here answered EINVAL in 77 of 2,000 fuzz runs, others never: not modelled
            raise c.error(sock.col, "listen() after a connect() not stated '= 0' on the same socket "
                          "is not modelled (after a refused connect() it is 0 or EINVAL, by whether "
                          "the connect call saw the refusal itself)")
        n = p.integer(c, backlog, "a backlog")
        if not INT_MIN <= n <= INT_MAX:
            # listen(2) takes an int; within it a negative or huge backlog is the kernel's to
            # clamp (__sys_listen_socket: (unsigned int)backlog > somaxconn -> somaxconn)
            raise c.error(backlog.col, f"expected a backlog that fits a C int ({INT_MIN}..{INT_MAX}), "
                          f"got {p.clip(backlog.text)}")
        return cls(c.lineno, c.text, c.expect, p.sock_ref(c, sock), n)


@dataclass(frozen=True)
class SockStep(Step):
    """A step whose one argument names a socket: `verb(a)`."""

    sock: str

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        ref = p.sock_ref(c, c.args[0])
        try:
            cls.track(p, ref)
        except ValueError:
            raise c.error(c.args[0].col, f"shutdown() of a connected UDP socket ({ref}) is not modelled") from None
        return cls(c.lineno, c.text, c.expect, ref)

    @staticmethod
    def track(p: Parser, sock: str) -> None:
        """What the parser notes of the socket for the steps after it (nothing, here)."""


@dataclass(frozen=True)
class CloseStep(SockStep, verb=Verb("close", "close(a)", Expect.STATUS, 1)):
    @staticmethod
    def track(p: Parser, sock: str) -> None:
        p.open.discard(sock)


@dataclass(frozen=True)
class GetsocknameStep(SockStep, verb=Verb("getsockname", "getsockname(a)", Expect.ADDRESS, 1)):
    pass


# The counters inuse() reads, by the name a scenario gives: sock_prot_inuse_get of the
# protocol's proto for that family (/proc/net/sockstat "TCP"/"UDP", sockstat6 "TCP6"/"UDP6").
INUSE: dict[str, tuple[Proto, int]] = {
    "tcp": (Proto.TCP, FAMILIES["AF_INET"]), "tcp6": (Proto.TCP, FAMILIES["AF_INET6"]),
    "udp": (Proto.UDP, FAMILIES["AF_INET"]), "udp6": (Proto.UDP, FAMILIES["AF_INET6"]),
}


@dataclass(frozen=True)
class InuseStep(Step, verb=Verb("inuse", "inuse(tcp)", Expect.COUNT, 1, keeps_queues=True)):
    counter: str  # a key of INUSE

    @property
    def proto(self) -> Proto:
        return INUSE[self.counter][0]

    @property
    def family(self) -> int:
        return INUSE[self.counter][1]

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        if c.args[0].text not in INUSE:
            raise c.error(c.args[0].col, f"expected one of {', '.join(INUSE)}, got {c.args[0].text!r}")
        return cls(c.lineno, c.text, c.expect, c.args[0].text)


@dataclass(frozen=True)
class FlowStep(Step):
    """A step of one injected flow, from a virtual client to an address of the namespace."""

    src: SockAddr
    dst: SockAddr
    payload: int = 0

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        flow = c.args[0]
        src_text, gt, dst_text = flow.text.partition(">")
        if not gt:
            raise c.error(flow.col, "expected 'SRC:PORT > DST:PORT'")
        src = _flow_addr(c, src_text, flow.col, "client")
        dst_col = flow.col + len(src_text) + 1 + (len(dst_text) - len(dst_text.lstrip()))
        dst = _flow_addr(c, dst_text, dst_col, "server")
        if src.family != dst.family:
            raise c.error(dst_col, "source and destination must be of one family")
        if STANDARD.client_device(str(src.host)) is None:
            raise c.error(flow.col, f"{src.host} is in no client range routed to a TUN device "
                          "(198.18.0.0/16, 198.19.0.0/16, 2001:db8::/48, 2001:db8:1::/48)")
        if str(dst.host) not in STANDARD.server_addresses:
            raise c.error(dst_col, f"{dst.host} is not an address of tun0/tun1 "
                          f"({', '.join(STANDARD.server_addresses)})")
        if src.port == 0 or dst.port == 0:
            raise c.error(flow.col, "ports of a SYN must be 1-65535")
        payload = 0
        for a in c.args:
            if a.key == "payload":
                payload = p.integer(c, a, "a payload length")
                if not 0 <= payload <= 1400:
                    raise c.error(a.col, "expected a payload length 0-1400")
        return cls(c.lineno, c.text, c.expect, src, dst, payload)


def _flow_addr(c: Call, text: str, col: int, what: str) -> SockAddr:
    try:
        return parse_sockaddr(text.strip())
    except (ValueError, ipaddress.AddressValueError) as e:
        raise c.error(col, f"expected a {what} address:port: {e}") from None


def _flow_form(verb: str) -> str:
    return f"{verb}(198.18.0.7:40001 > 10.0.0.1:8080[, payload=N])"


@dataclass(frozen=True)
class SynStep(FlowStep, verb=Verb(
        "syn", _flow_form("syn"), Expect.LISTENER, 1, ("payload",), keeps_queues=True,
        injected=True, batched=True, picks_listener=True)):
    """A full handshake from a virtual client; the outcome is the listener that got it."""


@dataclass(frozen=True)
class DgramStep(FlowStep, verb=Verb(
        "dgram", _flow_form("dgram"), Expect.RECEIVER, 1, ("payload",), keeps_queues=True,
        batched=True, picks_receiver=True)):
    """A UDP datagram from a virtual client; the outcome is the socket that received it, ICMP
    (a port unreachable came back) or DROP (neither). `payload` bytes as a SYN carries them."""


@dataclass(frozen=True)
class QueueStep(SockStep, verb=Verb("queue", "queue(a)", Expect.COUNT_OR_ERRNO, 1, keeps_queues=True)):
    """`queue(a) = N`: the listener's accept-queue length."""

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        return cls(c.lineno, c.text, c.expect, p.tcp_ref(c, c.args[0], "queue()"))


@dataclass(frozen=True)
class ConnectStep(Step, verb=Verb(
        "connect", "connect(c, 10.0.0.2:80)", Expect.STATUS, 2, local_connection=True,
        picks_listener=True)):
    """connect() to an address of the namespace; the handshake runs over loopback."""

    sock: str
    addr: SockAddr

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        sock, addr = c.args
        ref = p.sock_ref(c, sock)
        if p.protos[ref] is Proto.UDP:
            return cls._udp(p, c, ref)
        if ref in p.unroutable:
            raise c.error(sock.col, f"connect() of a socket {p.unroutable[ref]} is not modelled "
                          "(its route and source are more than the local table)")
        try:
            sa = parse_sockaddr(addr.text)
        except (ValueError, ipaddress.AddressValueError) as e:
            raise c.error(addr.col, f"expected an address like 10.0.0.2:80: {e}") from None
        if sa.family != p.families[ref]:
            raise c.error(addr.col, f"{addr.text} does not match {ref}'s family {_family_name(p.families[ref])}")
        host = sa.host
        if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
            host = host.ipv4_mapped
            p.mapped_connect.add(ref)
        elif isinstance(host, ipaddress.IPv6Address) and ref in p.mapped_connect:
            # tcp_v6_connect switches icsk_af_ops to ipv6_mapped for a v4-mapped peer and
            # restores them only if tcp_v4_connect fails at once, not after a RST
            raise c.error(addr.col, "connect() to an IPv6 address after a v4-mapped connect() on "
                          "the same socket is not modelled (it keeps the ipv6_mapped operations)")
        if str(host) not in STANDARD.server_addresses:
            # loopback would make TIME_WAIT reuse depend on the clock (tcp_twsk_unique), and
            # other destinations leave the namespace
            raise c.error(addr.col, f"connect() goes to an address of tun0/tun1 "
                          f"({', '.join(STANDARD.server_addresses)}), got {host}")
        if sa.port == 0:
            raise c.error(addr.col, "expected a destination port 1-65535")
        if c.expect == "0":  # stated to succeed: connected, listen() is EINVAL on every kernel
            p.connected_ok.add(ref)
        elif ref not in p.connected_ok:  # not stated to succeed: it may have been refused
            p.connected.add(ref)
        return cls(c.lineno, c.text, c.expect, ref, sa)


    @classmethod
    def _udp(cls, p: Parser, c: Call, ref: str) -> Step:
        """connect() of a UDP socket: an AF_INET one to a virtual client (its datagrams then
        reach the socket by score), the one case modelled so far."""
        sock, addr = c.args
        if p.families[ref] != socket.AF_INET:
            raise c.error(sock.col, "connect() of an AF_INET6 UDP socket is not modelled yet")
        if ref in p.unroutable:
            raise c.error(sock.col, f"connect() of a UDP socket {p.unroutable[ref]} is not modelled")
        if ref in p.udp_shut:
            raise c.error(sock.col, "connect() of a UDP socket after its shutdown() is not modelled "
                          "(sk_shutdown stays set)")
        p.udp_connected.add(ref)
        try:
            sa = parse_sockaddr(addr.text)
        except (ValueError, ipaddress.AddressValueError) as e:
            raise c.error(addr.col, f"expected a client address like 198.18.0.1:4000: {e}") from None
        if sa.family != socket.AF_INET or STANDARD.client_device(str(sa.host)) is None:
            raise c.error(addr.col, "connect() of a UDP socket goes to a virtual client "
                          f"(198.18.0.0/16, 198.19.0.0/16), got {addr.text}")
        if sa.port == 0:
            raise c.error(addr.col, "expected a destination port 1-65535")
        return cls(c.lineno, c.text, c.expect, ref, sa)


@dataclass(frozen=True)
class AcceptStep(Step, verb=Verb(
        "accept", "s = accept(a)", Expect.PEER, 1,
        names="accept() needs a name for the new socket: 's = accept(a)'", keeps_queues=True)):
    """`s = accept(a) = c`: a non-blocking accept; the value names the connecting socket."""

    name: str
    sock: str

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        ref = p.tcp_ref(c, c.args[0], "accept()")
        p.create(c, c.name, p.families[ref], fresh=False)
        return cls(c.lineno, c.text, c.expect, c.name, ref)


@dataclass(frozen=True)
class TwStep(Step, verb=Verb("tw", "tw()", Expect.COUNT_OR_ERRNO, 0, keeps_queues=True)):
    """`tw() = N`: sockstat's TCP "tw", the namespace's TIME_WAIT sockets."""

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        return cls(c.lineno, c.text, c.expect)


@dataclass(frozen=True)
class SynOnlyStep(FlowStep, verb=Verb(
        "syn_only", _flow_form("syn_only"), Expect.SYN_REPLY, 1, ("payload",), keeps_queues=True,
        injected=True, picks_listener=True, leaves_requests=True)):
    """A SYN and no ACK: SYNACK (a request socket), COOKIE, RST or DROP."""

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        s = super().parse(p, c)
        assert isinstance(s, FlowStep)
        p.half_open.add((s.src, s.dst))
        return s


@dataclass(frozen=True)
class AckStep(FlowStep, verb=Verb(
        "ack", _flow_form("ack"), Expect.LISTENER, 1, ("payload",), keeps_queues=True,
        injected=True, picks_listener=True)):
    """The ACK completing what a syn_only step left open; the value is the listener that got
    the connection, RST or DROP."""

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        s = super().parse(p, c)
        assert isinstance(s, FlowStep)
        if (s.src, s.dst) not in p.half_open:
            raise c.error(c.args[0].col, "ack() completes a handshake: send its syn_only() first")
        return s


@dataclass(frozen=True)
class ShutdownStep(SockStep, verb=Verb("shutdown", "shutdown(a)", Expect.STATUS, 1)):
    """shutdown(NAME): SHUT_RDWR; a listener stops listening and keeps its descriptor (listen()
    again puts it back: reuseport_resurrect with tcp_migrate_req, else a fresh join)."""

    @staticmethod
    def track(p: Parser, sock: str) -> None:
        # inet_shutdown sets sk_shutdown on a UDP socket even when it answers ENOTCONN, and
        # what that does to a connected socket's receiving is not modelled
        if p.protos[sock] is Proto.UDP:
            if sock in p.udp_connected:
                raise ValueError
            p.udp_shut.add(sock)


MAP_ENTRIES_MAX = 1 << 16  # a bound of ours on a scenario's sockarray (the kernel allows more)


def _map_ref(p: Parser, c: Call, arg) -> str:
    if arg.text not in p.maps:
        raise c.error(arg.col, f"unknown map {arg.text!r}; create it first with '{arg.text} = sockarray(4)'")
    return arg.text


def _map_key(p: Parser, c: Call, arg) -> int:
    key = p.integer(c, arg, "a map key")
    if not 0 <= key <= 0xFFFFFFFF:
        raise c.error(arg.col, f"expected a map key 0..4294967295 (a u32), got {p.clip(arg.text)}")
    return key


@dataclass(frozen=True)
class SockarrayStep(Step, verb=Verb(
        "sockarray", "m = sockarray(4)", Expect.STATUS, 1,
        names="sockarray() needs a name: 'm = sockarray(4)'", fixed=True)):
    """`m = sockarray(N)`: a BPF_MAP_TYPE_REUSEPORT_SOCKARRAY of N slots (u32 key, u64 fd) that
    SO_ATTACH_REUSEPORT_EBPF programs select from (model/ebpf.py)."""

    map: str
    entries: int

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        n = p.integer(c, c.args[0], "a number of slots")
        if not 0 <= n <= MAP_ENTRIES_MAX:
            raise c.error(c.args[0].col, f"expected 0..{MAP_ENTRIES_MAX} slots, got {p.clip(c.args[0].text)}")
        if c.name in p.defined:
            raise c.error(c.name_col, f"{c.name!r} names a socket; a map needs a name of its own")
        if c.name in p.maps:
            raise c.error(c.name_col, f"map {c.name!r} exists already")
        p.maps.add(c.name)
        return cls(c.lineno, c.text, c.expect, c.name, n)


@dataclass(frozen=True)
class MapUpdateStep(Step, verb=Verb("map_update", "map_update(m, 0, a)", Expect.STATUS, 3, fixed=True)):
    """`map_update(m, K, a)`: BPF_MAP_UPDATE_ELEM of socket a's fd into slot K (BPF_ANY)."""

    map: str
    key: int
    sock: str

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        m, key, sock = c.args
        return cls(c.lineno, c.text, c.expect, _map_ref(p, c, m), _map_key(p, c, key),
                   p.tcp_ref(c, sock, "map_update()"))


@dataclass(frozen=True)
class MapDeleteStep(Step, verb=Verb("map_delete", "map_delete(m, 0)", Expect.STATUS, 2, fixed=True)):
    """`map_delete(m, K)`: BPF_MAP_DELETE_ELEM of slot K."""

    map: str
    key: int

    @classmethod
    def parse(cls, p: Parser, c: Call) -> Step:
        m, key = c.args
        return cls(c.lineno, c.text, c.expect, _map_ref(p, c, m), _map_key(p, c, key))
