"""Which socket gets a datagram: __udp4_lib_lookup / __udp6_lib_lookup (net/ipv4/udp.c,
net/ipv6/udp.c): the 4-tuple hash of connected sockets where the slot has one (6.13+, profile
udp_hash4), then the exact-address hash2 slot, then the wildcard one, each by score, with a
reuseport group's pick rescored once the group has connections.

Sources read: Debian linux-source-5.10, -6.1, -6.12, -7.2. udp4_lib_lookup1 (6.14, in Debian's
6.1 and 6.12 too) scans the port's chain only when both slots found nothing, with the
datagram's own address, so it finds no socket they missed (one bound to that address would be
in the first slot) unless a connect() races the lookup, which the model has no clock for.
"""

from __future__ import annotations

import ipaddress
import socket

from model.jhash import ipv4_word_of
from model.listen import ListenTables
from model.lookup import Choice, Hashes6, Lookup, Syn, inet_bound_dev_eq
from model.sock import Sock, TcpState
from model.udp import NULL_SLOT, UdpTable

IN6ADDR_ANY = ipaddress.IPv6Address("::")

# An incoming datagram as the lookup reads it: the same fields as a SYN's
Datagram = Syn


def compute_score(sk: Sock, d: Datagram, daddr: object) -> int:
    """compute_score of net/ipv4/udp.c (IPv4) or net/ipv6/udp.c (IPv6): -1 unless port, exact
    address, a connected socket's peer and the device match. IPv4: 2 for AF_INET else 1, +4
    the peer's address, +4 its port, +4 a bound device, +1 on the receiving CPU. IPv6: 0, +1
    each."""
    if sk.num != d.dport:
        return -1
    if d.family == socket.AF_INET:
        if sk.ipv6_only or sk.rcv_saddr != daddr:
            return -1
        score, device = (2 if sk.family == socket.AF_INET else 1), 4
    else:
        if sk.family != socket.AF_INET6 or sk.v6_rcv_saddr != daddr:
            return -1
        score, device = 0, 1
    if sk.daddr is not None:  # inet_daddr (a connect()ed socket's peer)
        if sk.daddr != d.src:
            return -1
        score += device
    if sk.dport:  # inet_dport
        if sk.dport != d.sport:
            return -1
        score += device
    # udp_sk_bound_dev_eq: inet_bound_dev_eq with udp_l3mdev_accept 0 and no L3 master
    if not inet_bound_dev_eq(sk.bound_dev_if, d.dif):
        return -1
    if sk.bound_dev_if:
        score += device
    if sk.incoming_cpu == d.cpu:
        score += 1
    return score


class UdpLookup:
    """The receive lookup of one namespace's UDP table. A group's pick is reuseport_select_sock,
    as for TCP (model.lookup.Lookup's), with udp_ehashfn: the pre-6.15 __inet_ehashfn form on
    every kernel, keyed by udp_ehash_secret + net_hash_mix (`secret`, calibrated by the harness
    for IPv4; None: a pick by hash is 'one of the group'). udp6_ehashfn mixes a second secret
    into the source address: `hashes6` holds what the kernel computed for the IPv6 tuples it
    read (harness/hashprobe.py); a tuple not in it is 'one of the group'."""

    def __init__(self, table: UdpTable, secret: int | None = None, incoming_cpu: bool = True,
                 hashes6: Hashes6 | None = None):
        self.table = table
        self.picker = Lookup(ListenTables(), secret, False, incoming_cpu, hashes6,
                             names=("udp_ehashfn", "udp6_ehashfn"))

    def receiver(self, d: Datagram) -> Choice:
        """__udp4_lib_lookup / __udp6_lib_lookup: the slot of the datagram's address, then (if
        it found nothing) the wildcard slot."""
        v4 = d.family == socket.AF_INET
        fn = "__udp4_lib_lookup" if v4 else "__udp6_lib_lookup"
        exact = int(d.dst) if v4 else d.dst
        own = (4, exact) if v4 else (6, exact)
        for sk in self.table.hashed4.get((d.dport, own), ()):
            # udp4_lib_lookup4, where the slot holds 4-tuple-hashed sockets (udp_has_hash4):
            # an exact match of the tuple (inet_match), before any score
            if sk.daddr == d.src and sk.dport == d.sport and inet_bound_dev_eq(sk.bound_dev_if, d.dif):
                return Choice(sk, f"{fn}: udp4_lib_lookup4: {sk.name} is connected to "
                              f"{d.src}:{d.sport} (the 4-tuple hash)")
        for daddr, key, which in ((exact, own, "exact-address"),
                                  (0 if v4 else IN6ADDR_ANY, NULL_SLOT, "wildcard")):
            found = self._lookup2(d, self.table.slot(d.dport, key), daddr, which, fn)
            if found is not None:
                return found
        return Choice(None, f"{fn}: no socket on port {d.dport} for {d.dst}")

    def _lookup2(self, d: Datagram, slot: list[Sock], daddr: object, which: str, fn: str) -> Choice | None:
        """udp4_lib_lookup2 / udp6_lib_lookup2: the first socket that beats the best score so
        far (IPv4 from 0, IPv6 from -1) is the result; if it has SO_REUSEPORT and a group with
        members, the group's pick is returned at once, however later sockets would score."""
        result: Sock | Choice | None = None
        badness = 0 if d.family == socket.AF_INET else -1
        for sk in slot:  # the hash2 slot's sockets of this port (others never match)
            score = compute_score(sk, d, daddr)
            if score <= badness:
                continue
            badness = score
            if sk.state is TcpState.ESTABLISHED:  # connected: no group pick
                result = sk
                continue
            group = sk.reuseport_cb
            if sk.reuseport and group is not None and group.num_socks:
                # inet_lookup_reuseport -> reuseport_select_sock; the hash takes the slot's
                # daddr (INADDR_ANY / in6addr_any in the wildcard slot)
                head = f"{fn}: {which} slot: {sk.name} (score {score}) is in group {group.describe()}"
                word = None if d.family == socket.AF_INET6 else ipv4_word_of(daddr)  # type: ignore[arg-type]
                pick = self.picker.reuseport_pick(group, d, head, daddr, word)
                if not group.has_conns:
                    return pick
                # "Fall back to scoring if group has connections": the pick is the result
                # so far, and its own score, if higher, the one to beat
                if pick.sk is not None and not pick.one_of:
                    badness = max(badness, compute_score(pick.sk, d, daddr))
                pick.reason += "; the group has connections: later sockets may score higher"
                result = pick
                continue
            result = sk
        if result is None or isinstance(result, Choice):
            return result
        return Choice(result, f"{fn}: {which} slot: {result.name} has the best score {badness} "
                      "(the first to reach it in the chain)")
