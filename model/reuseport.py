"""struct sock_reuseport: the group of listeners that share a port (net/core/sock_reuseport.c)."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.sock import Sock


@dataclass(eq=False)
class ReuseportGroup:
    """socks[0:num_socks] are listening, in listen() order as the kernel keeps them."""

    bind_inany: bool
    socks: list[Sock] = field(default_factory=list)
    num_closed_socks: int = 0

    @property
    def num_socks(self) -> int:
        return len(self.socks)


def reuseport_alloc(sk: Sock, bind_inany: bool) -> None:
    """reuseport_alloc: a new group with sk as socks[0]."""
    group = ReuseportGroup(bind_inany=bind_inany, socks=[sk])
    sk.reuseport_cb = group


def reuseport_add_sock(sk: Sock, sk2: Sock, bind_inany: bool) -> None:
    """reuseport_add_sock: sk joins sk2's group at the end of socks[]."""
    group = sk2.reuseport_cb
    assert group is not None
    group.socks.append(sk)
    sk.reuseport_cb = group


def reuseport_detach_sock(sk: Sock) -> None:
    """__reuseport_detach_sock: the last socket moves into the freed slot."""
    group = sk.reuseport_cb
    if group is None:
        return
    i = group.socks.index(sk)
    last = group.socks.pop()
    if last is not sk:
        group.socks[i] = last
    sk.reuseport_cb = None
