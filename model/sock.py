"""struct sock, as far as bind/listen read it (include/net/sock.h, inet_sock.h)."""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from model.bind import Bind2Bucket, BindBucket
    from model.reuseport import ReuseportGroup


class TcpState(enum.Enum):
    """The sk_state values bind/listen look at (include/net/tcp_states.h)."""

    CLOSE = "CLOSE"
    LISTEN = "LISTEN"
    TIME_WAIT = "TIME_WAIT"


# sk_reuse values (include/net/sock.h)
SK_NO_REUSE = 0
SK_CAN_REUSE = 1
SK_FORCE_REUSE = 2

# sk_userlocks bits (include/net/sock.h)
SOCK_BINDADDR_LOCK = 4
SOCK_BINDPORT_LOCK = 8


@dataclass(eq=False)
class Sock:
    """One socket. Identity is the object: two socks are never equal by value."""

    name: str
    family: int = socket.AF_INET
    uid: int = 0  # sock_i_uid: the inode's uid, taken from fsuid at socket()
    reuse: int = SK_NO_REUSE  # sk_reuse
    reuseport: bool = False  # sk_reuseport
    state: TcpState = TcpState.CLOSE
    num: int = 0  # inet_num: the bound local port
    rcv_saddr: int = 0  # inet_rcv_saddr, host order
    bound_dev_if: int = 0  # sk_bound_dev_if
    userlocks: int = 0
    max_ack_backlog: int = 0
    autobound: bool = False  # the port was picked by inet_csk_find_open_port
    bind_hash: BindBucket | None = field(default=None, repr=False)  # icsk_bind_hash
    bind2_hash: Bind2Bucket | None = field(default=None, repr=False)  # icsk_bind2_hash
    reuseport_cb: ReuseportGroup | None = field(default=None, repr=False)  # sk_reuseport_cb
    fd_closed: bool = False

    @property
    def ipv6_only(self) -> bool:
        """ipv6_only_sock(): never true for AF_INET sockets."""
        return False

    def describe(self) -> str:
        """'a (10.0.0.1:8080 LISTEN uid 0 SO_REUSEPORT)' for reasons."""
        import ipaddress

        flags = [f for f, on in (("SO_REUSEADDR", self.reuse), ("SO_REUSEPORT", self.reuseport)) if on]
        addr = f"{ipaddress.IPv4Address(self.rcv_saddr)}:{self.num}"
        return f"{self.name} ({addr} {self.state.value} uid {self.uid}{' ' if flags else ''}{' '.join(flags)})"
