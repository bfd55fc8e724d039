"""Which listener gets a SYN: __inet_lookup_listener / inet6_lookup_listener and reuseport
selection (net/ipv4/inet_hashtables.c, net/ipv6/inet6_hashtables.c, net/core/sock_reuseport.c).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from model.ebpf import SK_DROP, Attached
from model.jhash import inet_ehashfn_words, ipv4_word_of
from model.listen import ListenTables, portaddr_key
from model.reuseport import ReuseportGroup, reuseport_select_sock_by_hash
from model.sock import Sock

# inet6_ehashfn(net, laddr, lport, faddr, fport) by (laddr, lport, faddr, fport), as the kernel
# of the namespace computed it: the hash mixes ipv6_hash_secret into faddr
# (inet6_hashtables.c:inet6_ehashfn), which no calibrated word predicts, so the kernel side
# reads it (harness/hashprobe.py). laddr is in6addr_any for a pick in the wildcard chain.
Hashes6 = Mapping[tuple[ipaddress.IPv6Address, int, ipaddress.IPv6Address, int], int]


class Syn(NamedTuple):
    """An incoming SYN as the lookup sees it: the 4-tuple, payload, ingress device, CPU (a
    tuple: one is made per injected SYN)."""

    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    sport: int
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    dport: int
    payload: bytes
    dif: int  # ingress ifindex
    cpu: int  # raw_smp_processor_id(): the injector's CPU

    @property
    def family(self) -> int:
        return socket.AF_INET6 if self.dst.version == 6 else socket.AF_INET


@dataclass
class Choice:
    """The lookup's answer: the socket, why, and (when the kernel's hash cannot be predicted)
    the group members it may pick instead of an exact one."""

    sk: Sock | None
    reason: str
    one_of: tuple[Sock, ...] = ()
    hashed: bool = False  # decided by the namespace's hash secret: exact here, not across runs


def inet_bound_dev_eq(bound_dev_if: int, dif: int, sdif: int = 0) -> bool:
    """inet_bound_dev_eq (include/net/inet_sock.h), without an L3 master (tcp_l3mdev_accept 0)."""
    if not bound_dev_if:
        return not sdif
    return bound_dev_if in (dif, sdif)


def compute_score(sk: Sock, syn: Syn, daddr: object) -> int:
    """compute_score: -1 unless port, address and device match; 2 bound device else 1, +1 for
    AF_INET (IPv4 lookup only), +1 when sk_incoming_cpu is the receiving CPU."""
    if syn.family == socket.AF_INET:
        # net/ipv4/inet_hashtables.c compute_score
        if sk.num != syn.dport or sk.ipv6_only:
            return -1
        if sk.rcv_saddr != daddr:
            return -1
        score = 2 if sk.bound_dev_if else 1
        if not inet_bound_dev_eq(sk.bound_dev_if, syn.dif):
            return -1
        if sk.family == socket.AF_INET:
            score += 1
    else:
        # net/ipv6/inet6_hashtables.c compute_score
        if sk.num != syn.dport or sk.family != socket.AF_INET6:
            return -1
        if sk.v6_rcv_saddr != daddr:
            return -1
        if not inet_bound_dev_eq(sk.bound_dev_if, syn.dif):
            return -1
        score = 2 if sk.bound_dev_if else 1
    if sk.incoming_cpu == syn.cpu:
        score += 1
    return score


class Lookup:
    """The listener lookup of one namespace; `secret` is inet_ehash_secret + net_hash_mix
    (calibrated), None when unknown; `lport_outside` picks the 6.15+ inet_ehashfn;
    `incoming_cpu` the 6.1+ SO_INCOMING_CPU scan of a group (profile reuseport_incoming_cpu);
    `hashes6` the kernel's inet6_ehashfn of the IPv6 tuples it knows (Hashes6)."""

    def __init__(self, listens: ListenTables, secret: int | None, lport_outside: bool,
                 incoming_cpu: bool = True, hashes6: Hashes6 | None = None,
                 names: tuple[str, str] = ("inet_ehashfn", "inet6_ehashfn")):
        self.listens, self.secret, self.lport_outside = listens, secret, lport_outside
        self.hash4_name, self.hash6_name = names  # the ehashfn a group's pick is by, for reasons
        self.incoming_cpu = incoming_cpu
        self.hashes6: Hashes6 = hashes6 or {}
        # (dst, dport, dif, cpu) -> the walk's answer, or the group that picks per SYN
        self._plans: dict[tuple[object, int, int, int], Choice | tuple[str, ReuseportGroup, object, int | None]] = {}

    def listener(self, syn: Syn) -> Choice:
        """__inet_lookup_listener / inet6_lookup_listener: the exact-address chain, then the
        wildcard chain. The walk depends on the SYN's destination, port, device and CPU only
        (compute_score), so it is planned once per such key until forget(); a reuseport group
        still picks per SYN (its hash or program)."""
        key = (syn.dst, syn.dport, syn.dif, syn.cpu)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._plan(syn)
        if isinstance(plan, Choice):
            return plan  # no group decides: the same answer for every SYN of the key
        head, group, daddr, daddr_word = plan
        return self.reuseport_pick(group, syn, head, daddr, daddr_word)

    def forget(self) -> None:
        """The listening tables or a listener changed: plan every lookup again."""
        self._plans.clear()

    def _plan(self, syn: Syn) -> Choice | tuple[str, ReuseportGroup, object, int | None]:
        """The walk of both chains for syn's key: the answer, or the reuseport group that picks
        per SYN (with the reason's start, the daddr of the chain that found it and, for IPv4,
        that daddr as the hash's word)."""
        if syn.family == socket.AF_INET:
            exact, wild = int(syn.dst), 0
            fn = "__inet_lookup_listener"
        else:
            exact, wild = syn.dst, ipaddress.IPv6Address("::")
            fn = "inet6_lookup_listener"
        for daddr, which in ((exact, "exact-address"), (wild, "wildcard")):
            planned = self._lhash2_lookup(syn, daddr)
            if isinstance(planned, Choice):
                planned.reason = f"{fn}: {which} chain: {planned.reason}"
                return planned
            if planned is not None:
                sk, score = planned
                assert sk.reuseport_cb is not None
                head = f"{fn}: {which} chain: {sk.name} (score {score}) is in group {sk.reuseport_cb.describe()}"
                word = ipv4_word_of(daddr) if syn.family == socket.AF_INET else None
                return head, sk.reuseport_cb, daddr, word
        return Choice(None, f"{fn}: no listener on port {syn.dport} for {syn.dst}")

    def ehash_of(self, laddr: object, lport: int, faddr: object, fport: int) -> int | None:
        """sk_hash of a connection or request socket (inet_ehashfn / inet6_ehashfn of its
        4-tuple); None when unknown (no calibrated secret; an IPv6 tuple the kernel side did
        not read)."""
        if isinstance(laddr, ipaddress.IPv6Address):
            return self.hashes6.get((laddr, lport, faddr, fport))
        if self.secret is None:
            return None
        return inet_ehashfn_words(self.secret, ipv4_word_of(int(laddr)), lport,
                                  ipv4_word_of(int(faddr)), fport, self.lport_outside)

    def _chain(self, syn: Syn, daddr: object) -> list[Sock]:
        if syn.family == socket.AF_INET:
            key = portaddr_key(socket.AF_INET, daddr, None)
        else:
            key = portaddr_key(socket.AF_INET6, 0, daddr)
        return self.listens.lhash2.get((syn.dport, key), [])

    def _lhash2_lookup(self, syn: Syn, daddr: object) -> Choice | tuple[Sock, int] | None:
        """inet_lhash2_lookup: walk the chain; the first socket that beats the best score so far
        becomes the answer, and if it is in a reuseport group with members the group's pick
        returns at once (returned here as that socket and its score: the pick is per SYN)."""
        result, hiscore = None, 0
        for sk in self._chain(syn, daddr):
            score = compute_score(sk, syn, daddr)
            if score > hiscore:
                # inet_lookup_reuseport: a group without members picks nothing (see reuseport_pick)
                if sk.reuseport and sk.reuseport_cb is not None and sk.reuseport_cb.num_socks:
                    return sk, score
                result, hiscore = sk, score
        if result is None:
            return None
        return Choice(result, f"{result.name} has the best score {hiscore}")

    def reuseport_pick(self, group: ReuseportGroup, syn: Syn, head: str, daddr: object,
                       daddr_word: int | None) -> Choice:
        """inet_lookup_reuseport -> reuseport_select_sock: the program, else the hash, of a
        group with members. The hash takes the daddr the chain was looked up with: INADDR_ANY
        in the wildcard chain (__inet_lookup_listener passes htonl(INADDR_ANY) to
        inet_lhash2_lookup); `daddr_word` is it as the hash reads it (IPv4), None for IPv6."""
        prog = group.prog
        if prog is None:
            pass
        elif isinstance(prog, Attached):
            # bpf_run_sk_reuseport: SK_PASS with a selection is that socket; SK_DROP is an
            # ERR_PTR, which the lookup returns as no socket (inet_hashtables.c:
            # __inet_lookup_listener / inet6_lookup_listener: IS_ERR(result) -> NULL)
            action, chosen, how = group.prog.run(group, syn.payload, group.socks[0].family, migrating=False)
            if action == SK_DROP:
                return Choice(None, f"{head}; eBPF {group.prog}: {how}: no socket")
            if chosen is not None:
                return Choice(chosen, f"{head}; eBPF {group.prog}: {how} -> {chosen.name}")
            head += f"; eBPF {group.prog}: {how}, the hash picks"
        else:
            index, how = group.prog.run(syn.payload, syn.cpu)  # run_bpf_filter
            if index < group.num_socks:
                chosen = group.socks[index]
                return Choice(chosen, f"{head}; cBPF {group.prog}: {how} -> socks[{index}] = {chosen.name}")
            head += f"; cBPF {group.prog}: {how} >= num_socks {group.num_socks}, falls back to the hash"
        if daddr_word is None:
            phash = self.hashes6.get((daddr, syn.dport, syn.src, syn.sport))
        elif self.secret is not None:
            phash = inet_ehashfn_words(self.secret, daddr_word, syn.dport,
                                       ipv4_word_of(int(syn.src)), syn.sport, self.lport_outside)
        else:
            phash = None
        unknown_hash = phash is None
        if unknown_hash and len(group.socks) == 1:
            # without the hash: reciprocal_scale(hash, 1) is 0 whatever it is, and the CPU scan
            # of reuseport_select_sock_by_hash ends at socks[0]
            return Choice(group.socks[0], f"{head}; one member: socks[0] = {group.socks[0].name}")
        if unknown_hash:
            # inet6_ehashfn mixes in a second secret; an uncalibrated IPv4 secret likewise
            members = tuple(group.socks)  # O(group) per SYN, but a C copy
            why = self.hash6_name if syn.family == socket.AF_INET6 else f"an uncalibrated {self.hash4_name}"
            return Choice(None, f"{head}; {why}: one of the group", one_of=members)
        assert phash is not None
        chosen, how = reuseport_select_sock_by_hash(group, phash, syn.cpu, self.incoming_cpu)
        assert chosen is not None
        fn = self.hash6_name if daddr_word is None else self.hash4_name
        return Choice(chosen, f"{head}; {fn} = {phash:#010x}, {how} -> {chosen.name}",
                      hashed=len(group.socks) > 1)  # one member: the same in every namespace
