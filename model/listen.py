"""The listening hash (lhash2) and the per-netns TCP `inuse` counter (net/ipv4/inet_hashtables.c)."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.bind import inet_rcv_saddr_equal
from model.reuseport import reuseport_add_sock, reuseport_alloc, reuseport_detach_sock
from model.sock import Sock


@dataclass
class ListenTables:
    """lhash2: listeners per (port, address) bucket, in the kernel's chain order."""

    lhash2: dict[tuple[int, int], list[Sock]] = field(default_factory=dict)
    inuse: int = 0  # sock_prot_inuse_get(net, &tcp_prot)

    def bucket(self, sk: Sock) -> list[Sock]:
        """inet_lhash2_bucket_sk: the chain for sk's (address, port)."""
        return self.lhash2.setdefault((sk.num, sk.rcv_saddr), [])

    def inet_hash(self, sk: Sock) -> None:
        """__inet_hash for a LISTEN socket: join or start a reuseport group, then link sk
        at the head of its lhash2 chain, and count it in `inuse`."""
        chain = self.bucket(sk)
        if sk.reuseport:
            inet_reuseport_add_sock(sk, chain)
        chain.insert(0, sk)  # __sk_nulls_add_node_rcu (AF_INET: head)
        self.inuse += 1  # sock_prot_inuse_add(net, sk->sk_prot, 1)

    def inet_unhash(self, sk: Sock) -> None:
        """inet_unhash for a LISTEN socket: leave the group, the chain and `inuse`."""
        chain = self.lhash2.get((sk.num, sk.rcv_saddr), [])
        if sk not in chain:
            return
        if sk.reuseport_cb is not None:
            reuseport_detach_sock(sk)  # reuseport_stop_listen_sock without migration
        chain.remove(sk)
        if not chain:
            del self.lhash2[(sk.num, sk.rcv_saddr)]
        self.inuse -= 1


def inet_reuseport_add_sock(sk: Sock, chain: list[Sock]) -> None:
    """inet_reuseport_add_sock: join the group of the first listener in the chain with the
    same family, v6-only flag, bound device, bind bucket, uid and exact address."""
    for sk2 in chain:
        if (
            sk2 is not sk
            and sk2.family == sk.family
            and sk2.ipv6_only == sk.ipv6_only
            and sk2.bound_dev_if == sk.bound_dev_if
            and sk2.bind_hash is sk.bind_hash
            and sk2.reuseport
            and sk2.uid == sk.uid
            and inet_rcv_saddr_equal(sk, sk2, False)
        ):
            reuseport_add_sock(sk, sk2, sk.rcv_saddr == 0)
            return
    reuseport_alloc(sk, sk.rcv_saddr == 0)
