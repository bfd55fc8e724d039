"""The listening hash (lhash2) and the per-netns TCP `inuse` counter (net/ipv4/inet_hashtables.c)."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from model.bind import inet_rcv_saddr_equal
from model.reuseport import reuseport_add_sock, reuseport_alloc, reuseport_stop_listen_sock
from model.sock import AddrType, Sock, ipv6_addr_type

ChainKey = tuple[int, object]


def portaddr_key(family: int, v4: int, v6: ipaddress.IPv6Address | None) -> object:
    """What ipv4_portaddr_hash / ipv6_portaddr_hash hash: :: and ::ffff:a.b.c.d hash as the
    IPv4 address (0 for the wildcards), so such sockets share the IPv4 chains."""
    if family == socket.AF_INET6 and v6 is not None:
        kind = ipv6_addr_type(v6)
        if kind == AddrType.ANY:
            return 0
        if kind == AddrType.MAPPED:
            return int(v6.ipv4_mapped)
        return v6
    return v4


def chain_key(sk: Sock) -> ChainKey:
    """inet_lhash2_bucket_sk: the chain a listener is linked into."""
    return sk.num, portaddr_key(sk.family, sk.rcv_saddr, sk.v6)


@dataclass
class ListenTables:
    """lhash2: listeners per (port, address) chain, in the kernel's chain order."""

    lhash2: dict[ChainKey, list[Sock]] = field(default_factory=dict)
    # sock_prot_inuse_get(net, &tcp_prot) and (net, &tcpv6_prot): an AF_INET6 socket, and any
    # child of an AF_INET6 listener (sk_clone_lock keeps sk_prot), counts as TCP6
    inuse: dict[int, int] = field(default_factory=lambda: {socket.AF_INET: 0, socket.AF_INET6: 0})

    def inet_hash(self, sk: Sock) -> str | None:
        """__inet_hash for a LISTEN socket: join or start a reuseport group, link sk into its
        lhash2 chain (IPv6 SO_REUSEPORT sockets at the tail, all others at the head), count it
        in `inuse`. Returns an errno name if joining the group failed."""
        chain = self.lhash2.setdefault(chain_key(sk), [])
        if sk.reuseport:
            err = inet_reuseport_add_sock(sk, chain)
            if err:
                return err
        if sk.family == socket.AF_INET6 and sk.reuseport:
            chain.append(sk)  # __sk_nulls_add_node_tail_rcu
        else:
            chain.insert(0, sk)  # __sk_nulls_add_node_rcu
        self.inuse[sk.family] += 1  # sock_prot_inuse_add(net, sk->sk_prot, 1)
        return None

    def inet_unhash(self, sk: Sock, migrate: bool = False) -> None:
        """inet_unhash for a LISTEN socket: leave the group (or, with tcp_migrate_req, move to
        its closed section), the chain and `inuse`."""
        key = chain_key(sk)
        chain = self.lhash2.get(key, [])
        if sk not in chain:
            return
        if sk.reuseport_cb is not None:
            reuseport_stop_listen_sock(sk, migrate)
        chain.remove(sk)
        if not chain:
            del self.lhash2[key]
        self.inuse[sk.family] -= 1


def inet_reuseport_add_sock(sk: Sock, chain: list[Sock]) -> str | None:
    """inet_reuseport_add_sock: join the group of the first listener in the chain with the
    same family, v6-only flag, bound device, bind bucket, uid and exact address."""
    bind_inany = sk.rcv_saddr_any
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
            return reuseport_add_sock(sk, sk2, bind_inany)
    reuseport_alloc(sk, bind_inany)
    return None
