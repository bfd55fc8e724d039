"""struct sock, as far as bind/listen/lookup read it (include/net/sock.h, inet_sock.h, ipv6.h)."""

from __future__ import annotations

import enum
import functools
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.bind import Bind2Bucket, BindBucket
    from model.ebpf import SockArray
    from model.reuseport import ReuseportGroup


class TcpState(enum.Enum):
    """The sk_state values bind/listen look at (include/net/tcp_states.h)."""

    CLOSE = "CLOSE"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECV = "SYN_RECV"  # a request socket (TCP_NEW_SYN_RECV)
    ESTABLISHED = "ESTABLISHED"
    CLOSE_WAIT = "CLOSE_WAIT"
    FIN_WAIT1 = "FIN_WAIT1"  # shut down, its FIN not yet ACKed (an injected client never does)
    FIN_WAIT2 = "FIN_WAIT2"  # shut down and ACKed, or a TIME_WAIT socket's tw_substate
    TIME_WAIT = "TIME_WAIT"


class Proto(enum.Enum):
    """The protocol of an AF_INET/AF_INET6 socket (sk_protocol), by the socket type that makes it:
    inet_create / inet6_create find tcp_prot for SOCK_STREAM, udp_prot (udpv6_prot) for SOCK_DGRAM."""

    TCP = "SOCK_STREAM"
    UDP = "SOCK_DGRAM"


# sk_reuse values (include/net/sock.h)
SK_NO_REUSE = 0
SK_CAN_REUSE = 1
SK_FORCE_REUSE = 2

# sk_userlocks bits (include/net/sock.h)
SOCK_BINDADDR_LOCK = 4
SOCK_BINDPORT_LOCK = 8
SOCK_CONNECT_BIND = 16  # the port was picked by connect() (profile: connect_bind_reset)

# __inet6_bind: "ipv4 addr of the socket is invalid" for a specific IPv6 address
LOOPBACK4_IPV6 = int(ipaddress.IPv4Address("127.0.0.6"))
IN6ADDR_ANY = ipaddress.IPv6Address("::")


class AddrType(enum.Enum):
    """The ipv6_addr_type() classes the socket code tests (include/net/ipv6.h)."""

    ANY = "any"
    MAPPED = "mapped"
    MULTICAST = "multicast"
    LINKLOCAL = "linklocal"
    UNICAST = "unicast"


def ipv6_addr_type(addr: ipaddress.IPv6Address) -> AddrType:
    """ipv6_addr_type / __ipv6_addr_type (net/ipv6/addrconf_core.c), the classes used here."""
    if addr == IN6ADDR_ANY:
        return AddrType.ANY
    if addr.ipv4_mapped is not None:
        return AddrType.MAPPED
    if addr.is_multicast:
        return AddrType.MULTICAST
    if addr.is_link_local:
        return AddrType.LINKLOCAL
    return AddrType.UNICAST


@functools.lru_cache(maxsize=4096)
def v4mapped(v4: int) -> ipaddress.IPv6Address:
    """ipv6_addr_set_v4mapped: ::ffff:a.b.c.d (cached: a child per SYN asks for its address)."""
    return ipaddress.IPv6Address((0xFFFF << 32) | v4)


@dataclass(eq=False)
class Sock:
    """One socket. Identity is the object: two socks are never equal by value."""

    name: str
    family: int = socket.AF_INET
    proto: Proto = Proto.TCP
    uid: int = 0  # sock_i_uid: the inode's uid, taken from fsuid at socket()
    reuse: int = SK_NO_REUSE  # sk_reuse
    reuseport: bool = False  # sk_reuseport
    ipv6only: bool = False  # sk_ipv6only (AF_INET6 only; from net.ipv6.bindv6only at socket())
    state: TcpState = TcpState.CLOSE
    num: int = 0  # inet_num: the bound local port
    sport: int = 0  # inet_sport: what getsockname shows; not cleared when the port is released
    rcv_saddr: int = 0  # inet_rcv_saddr, as an integer
    v6_rcv_saddr: ipaddress.IPv6Address = IN6ADDR_ANY  # sk_v6_rcv_saddr (AF_INET6)
    bound_dev_if: int = 0  # sk_bound_dev_if
    incoming_cpu: int = -1  # sk_incoming_cpu (sock_init_data sets -1)
    freebind: bool = False  # INET_FLAGS_FREEBIND (IP_FREEBIND / IPV6_FREEBIND)
    bind_address_no_port: bool = False  # INET_FLAGS_BIND_ADDRESS_NO_PORT
    userlocks: int = 0
    linger_abort: bool = False  # SO_LINGER {1, 0}: SOCK_LINGER with sk_lingertime 0 (children copy it)
    max_ack_backlog: int = 0
    accept_queue: list = field(default_factory=list, repr=False)  # children not yet accepted
    syn_queue: list = field(default_factory=list, repr=False)  # requests whose rsk_listener it is
    # icsk_accept_queue.qlen counts syn_queue but for this drift: a migrated request reset on its
    # target's full accept queue is counted off the target, not off its own listener
    # (tcp_minisocks.c:tcp_check_req, embryonic_reset: inet_csk_reqsk_queue_drop(sk, req))
    qlen_drift: int = 0
    autobound: bool = False  # the port was one of several the kernel could pick at random
    local_port_range: int = 0  # IP_LOCAL_PORT_RANGE: hi << 16 | lo, 0 when unset
    # a connection: the peer address (v4-mapped held as IPv4) and port, and the socket at the
    # other end when it is in this namespace (None for an injected client)
    daddr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dport: int = 0
    peer: Sock | None = field(default=None, repr=False)
    parent: Sock | None = field(default=None, repr=False)  # the listener queuing this child
    connected: bool = False  # sock->state == SS_CONNECTED (connect() or accept() succeeded)
    # the REUSEPORT_SOCKARRAY slot holding it (sk_user_data | SK_USER_DATA_BPF), if any
    sockarray: tuple[SockArray, int] | None = field(default=None, repr=False)
    tw_substate: TcpState | None = None  # a TIME_WAIT socket's FIN_WAIT2 or TIME_WAIT
    ts_recent_stamp: bool = False  # tp->rx_opt.ts_recent_stamp != 0 (timestamps were seen)
    # a listener's rx_opt.ts_recent_stamp is its last SYN queue overflow instead (tcp_synq_overflow,
    # where SO_REUSEPORT gives it no group): a cookie was sent and is still valid (no clock: the
    # model takes every step as within TCP_SYNCOOKIE_VALID, 2 minutes)
    synq_overflow: bool = False
    injected: bool = False  # a child of an injected SYN (its client is not a socket here)
    ehash_key: tuple | None = field(default=None, repr=False)  # the 4-tuple while in ehash
    bind_hash: BindBucket | None = field(default=None, repr=False)  # icsk_bind_hash
    bind2_hash: Bind2Bucket | None = field(default=None, repr=False)  # icsk_bind2_hash
    reuseport_cb: ReuseportGroup | None = field(default=None, repr=False)  # sk_reuseport_cb
    fd_closed: bool = False
    udp_hash4: bool = False  # in the UDP 4-tuple hash (udp_lib_hash4, profile udp_hash4)

    @property
    def ipv6_only(self) -> bool:
        """ipv6_only_sock(): sk_ipv6only, which AF_INET sockets never have."""
        return self.family == socket.AF_INET6 and self.ipv6only

    @property
    def rcv_saddr_any(self) -> bool:
        """inet_rcv_saddr_any: bound to the wildcard of its family (:: for AF_INET6)."""
        return self.v6_rcv_saddr == IN6ADDR_ANY if self.family == socket.AF_INET6 else not self.rcv_saddr

    @property
    def v6(self) -> ipaddress.IPv6Address | None:
        """inet6_rcv_saddr(): the IPv6 address of an AF_INET6 socket, None for AF_INET."""
        return self.v6_rcv_saddr if self.family == socket.AF_INET6 else None

    @property
    def bind2_addr(self) -> ipaddress.IPv6Address:
        """The address a bhash2 bucket holds (inet_bind2_bucket_init): v4 as ::ffff:a.b.c.d."""
        return self.v6_rcv_saddr if self.family == socket.AF_INET6 else v4mapped(self.rcv_saddr)

    def clone_for_child(self) -> Sock:
        """sk_clone_lock as far as the model reads it: a new ESTABLISHED socket with this
        listener's flags, uid, device and port, and nothing else (built without the dataclass
        constructor: one per SYN)."""
        child = object.__new__(Sock)
        d = dict(_CHILD_DEFAULTS)
        d.update(name=f"{self.name}<", family=self.family, uid=self.uid, reuse=self.reuse,
                 reuseport=self.reuseport, ipv6only=self.ipv6only, num=self.num, sport=self.num,
                 linger_abort=self.linger_abort,
                 bound_dev_if=self.bound_dev_if, accept_queue=[], syn_queue=[])
        child.__dict__ = d
        return child

    @property
    def syn_qlen(self) -> int:
        """inet_csk_reqsk_queue_len: atomic_read(&icsk_accept_queue.qlen), an int that can go
        below 0 (see qlen_drift)."""
        return len(self.syn_queue) + self.qlen_drift

    def local_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The local address as a connection key holds it: v4-mapped as IPv4."""
        if self.family == socket.AF_INET6:
            return self.v6_rcv_saddr.ipv4_mapped or self.v6_rcv_saddr
        return ipaddress.IPv4Address(self.rcv_saddr)

    def local_text(self, port: int | None = None) -> str:
        port = self.num if port is None else port
        if self.family == socket.AF_INET6:
            return f"[{socket.inet_ntop(socket.AF_INET6, self.v6_rcv_saddr.packed)}]:{port}"
        return f"{ipaddress.IPv4Address(self.rcv_saddr)}:{port}"

    def describe(self) -> str:
        """'a (10.0.0.1:8080 LISTEN uid 0 SO_REUSEPORT)' for reasons."""
        flags = [f for f, on in (("SO_REUSEADDR", self.reuse), ("SO_REUSEPORT", self.reuseport),
                                 ("IPV6_V6ONLY", self.ipv6_only), ("IP_FREEBIND", self.freebind)) if on]
        if self.bound_dev_if:
            flags.append(f"dev {self.bound_dev_if}")
        extra = (" " + " ".join(flags)) if flags else ""
        state = "UDP" if self.proto is Proto.UDP else self.state.value
        return f"{self.name} ({self.local_text()} {state} uid {self.uid}{extra})"


# Every field's default, with the state of a new child (Sock.clone_for_child).
_CHILD_DEFAULTS = dict(Sock(name="").__dict__, state=TcpState.ESTABLISHED)
