"""UDP's port table and its bind rules (net/ipv4/udp.c): udp_lib_get_port with the checks it
makes (udp_lib_lport_inuse), udp_lib_unhash, and sock_prot_inuse of udp_prot / udpv6_prot.

Sources read: Debian linux-source-5.10 (5.10.x), -6.1 (6.1.192), -6.12 (6.12.117), -7.2
(7.2.13). udp_lib_lport_inuse and the port-0 search are the same in all four; the one
difference, inet_use_hash2_on_bind before the hash2 check, is read from BindRules.bhash2.
"""

from __future__ import annotations

import socket
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from model.bind import BindRules, PortResult, inet_rcv_saddr_equal, inet_use_hash2_on_bind
from model.outcome import RUNS_SHOWN, PortChoice, PortSet
from model.reuseport import reuseport_add_sock, reuseport_alloc, reuseport_detach_sock
from model.sock import IN6ADDR_ANY, Sock

# udp_lib_get_port: a bind to a given port checks the two hash2 slots (the address's and the
# wildcard's) instead of the port's chain once that chain holds more than 10 sockets, unless
# the address's slot holds more sockets than the chain (of every namespace: the model counts
# its own only)
HASH2_CHAIN_LEN = 10
# UDP_HTABLE_SIZE_MIN (include/net/udp.h, !CONFIG_BASE_SMALL): a table has at least this many
# primary slots, so sockets on ports equal modulo it may share the chain hslot->count counts
UDP_HTABLE_SIZE_MIN = 256


@dataclass
class UdpTable:
    """The namespace's bound UDP sockets (udptable->hash): each port's sockets in the order the
    port's primary chain holds them (only the relative order of one port's sockets matters:
    every walk skips sockets of other ports), and the UDP / UDP6 inuse counters."""

    chains: dict[int, list[Sock]] = field(default_factory=dict)
    inuse: dict[int, int] = field(default_factory=lambda: {socket.AF_INET: 0, socket.AF_INET6: 0})
    # the hash2 view: each (port, hash2_key) slot's sockets, in the chain's order (what
    # the receive lookup walks: one address's sockets, not the port's)
    slots: dict[tuple[int, tuple[int, object]], list[Sock]] = field(default_factory=dict)
    # each slot's 4-tuple-hashed sockets (udp_lib_hash4: hslot4, counted on hslot2 by
    # udp_hash4_inc), newest first: what udp4_lib_lookup4 walks when the slot has any
    hashed4: dict[tuple[int, tuple[int, object]], list[Sock]] = field(default_factory=dict)

    def chain(self, port: int) -> list[Sock]:
        return self.chains.get(port, [])

    def slot(self, port: int, key: tuple[int, object]) -> list[Sock]:
        return self.slots.get((port, key), [])

    def add(self, sk: Sock, port: int) -> None:
        """udp_lib_get_port's found: an SO_REUSEPORT socket joins or starts its group
        (udp_reuseport_add_sock); sk_add_node_rcu (include/net/sock.h) puts an AF_INET6
        SO_REUSEPORT socket at the chain's tail and any other at its head; then
        sock_prot_inuse_add(net, sk->sk_prot, 1). The hash2 chains keep the same order
        (udp_lib_get_port adds to hslot2 by the same test)."""
        sk.num = port
        chain = self.chains.setdefault(port, [])
        if sk.reuseport:
            udp_reuseport_add_sock(chain, sk)
        slot = self.slots.setdefault((port, hash2_key(sk)), [])
        for walk in (chain, slot):
            if sk.family == socket.AF_INET6 and sk.reuseport:
                walk.append(sk)
            else:
                walk.insert(0, sk)
        self.inuse[sk.family] += 1

    def remove(self, sk: Sock) -> bool:
        """udp_lib_unhash: out of the chain, inet_num 0, inuse - 1; False if sk was not hashed."""
        chain = self.chains.get(sk.num)
        if chain is None or sk not in chain:
            return False
        if sk.reuseport_cb is not None:
            reuseport_detach_sock(sk)  # the group's last member moves into sk's slot
        chain.remove(sk)
        if not chain:
            del self.chains[sk.num]
        key = (sk.num, hash2_key(sk))
        self.slots[key].remove(sk)
        if not self.slots[key]:
            del self.slots[key]
        if sk.udp_hash4:  # udp_unhash4
            self.hashed4[key].remove(sk)
            if not self.hashed4[key]:
                del self.hashed4[key]
        sk.num = 0
        self.inuse[sk.family] -= 1
        return True

    def move_slot(self, sk: Sock, old: tuple[int, object]) -> None:
        """udp_lib_rehash's move to the hash2 slot of sk's new address: at the slot's head
        (hlist_add_head_rcu), whatever its family and flags."""
        slot = self.slots[(sk.num, old)]
        slot.remove(sk)
        if not slot:
            del self.slots[(sk.num, old)]
        self.slots.setdefault((sk.num, hash2_key(sk)), []).insert(0, sk)

    def hash4(self, sk: Sock) -> None:
        """udp_lib_hash4: into its slot's 4-tuple hash (hlist_nulls_add_head_rcu); a socket
        there already is only rehashed by its new peer, which the tuple it is matched by reads."""
        if not sk.udp_hash4:
            sk.udp_hash4 = True
            self.hashed4.setdefault((sk.num, hash2_key(sk)), []).insert(0, sk)

    def slot_sharers(self, port: int) -> int:
        """The namespace's sockets that may share port's primary slot (hslot->count; other
        namespaces' sockets count too, which the model cannot see): those on ports equal to it
        modulo the smallest table."""
        return sum(len(c) for p, c in self.chains.items()
                   if p % UDP_HTABLE_SIZE_MIN == port % UDP_HTABLE_SIZE_MIN)


def udp_reuseport_add_sock(chain: list[Sock], sk: Sock) -> None:
    """udp_reuseport_add_sock: join the group of the first socket on the port with the same
    family, v6-only flag, bound device, SO_REUSEPORT, uid and exact address; else a group of
    its own. (reuseport_add_sock's EBUSY needs a group from a program attached before bind,
    which the parser refuses for UDP.)"""
    for sk2 in chain:
        if (sk2 is not sk and sk2.family == sk.family and sk2.ipv6_only == sk.ipv6_only
                and sk2.bound_dev_if == sk.bound_dev_if and sk2.reuseport and sk2.uid == sk.uid
                and inet_rcv_saddr_equal(sk, sk2, False)):
            reuseport_add_sock(sk, sk2, sk.rcv_saddr_any)
            return
    reuseport_alloc(sk, sk.rcv_saddr_any)


def udp_lib_rehash(sk: Sock) -> str:
    """udp_lib_rehash, which sock_bindtoindex_locked calls (sk->sk_prot->rehash) when a bound
    socket's device changes: its hash2 slot stays (the address and port do), but a socket in a
    reuseport group leaves it (reuseport_detach_sock): the group's last member moves into its
    slot, and it answers lookups on its own score from then on."""
    group = sk.reuseport_cb
    if group is None:
        return ""
    reuseport_detach_sock(sk)
    return f"; udp_lib_rehash: {sk.name} leaves its reuseport group, now {group.describe()}"


def _matches(sk: Sock, sk2: Sock) -> bool:
    """udp_lib_lport_inuse's test of sk2 on the same port (before the reuseport test): not both
    SO_REUSEADDR, devices compatible, addresses equal with wildcards matching."""
    return (sk2 is not sk
            and (not sk2.reuse or not sk.reuse)
            and (not sk2.bound_dev_if or not sk.bound_dev_if or sk2.bound_dev_if == sk.bound_dev_if)
            and inet_rcv_saddr_equal(sk, sk2, True))


def _shares_by_reuseport(sk: Sock, sk2: Sock) -> bool:
    """Both SO_REUSEPORT, sk in no group yet (!sk->sk_reuseport_cb), the same uid."""
    return sk2.reuseport and sk.reuseport and sk.reuseport_cb is None and sk.uid == sk2.uid


def lport_inuse(table: UdpTable, sk: Sock, snum: int) -> tuple[Sock | None, str]:
    """udp_lib_lport_inuse without a bitmap: the chain's first socket that matches decides,
    either way, so a sharer ahead in the chain hides a conflict behind it. (holder, why)."""
    for sk2 in table.chain(snum):
        if not _matches(sk, sk2):
            continue
        if _shares_by_reuseport(sk, sk2):
            return None, (f"udp_lib_lport_inuse: the first match on port {snum}, {sk2.describe()}, "
                          "shares by SO_REUSEPORT (same uid): the walk stops there")
        if sk2.reuseport and sk.reuseport and sk.uid == sk2.uid:
            why = (f"{sk.name} is in a reuseport group already (a program attached before bind), "
                   "and !sk->sk_reuseport_cb fails")
        else:
            why = "not both SO_REUSEADDR, nor both SO_REUSEPORT of one uid"
        return sk2, f"udp_lib_lport_inuse: on port {snum}, {sk.name} conflicts with {sk2.describe()}: {why}"
    return None, f"udp_lib_lport_inuse: no socket on port {snum} conflicts"


def hash2_key(sk: Sock) -> tuple[int, object]:
    """The address a socket's hash2 slot is hashed from (udp_portaddr_hash): ipv4_portaddr_hash
    and ipv6_portaddr_hash agree on the wildcard (jhash_1word(0, mix)) and hash a v4-mapped
    address as its IPv4 one, so those share a slot with the AF_INET sockets of that address."""
    if sk.family == socket.AF_INET6:
        mapped = sk.v6_rcv_saddr.ipv4_mapped
        if sk.v6_rcv_saddr == IN6ADDR_ANY:
            return 4, 0
        if mapped is not None:
            return 4, int(mapped)
        return 6, sk.v6_rcv_saddr
    return 4, sk.rcv_saddr


NULL_SLOT = (4, 0)  # hash2_nulladdr: of INADDR_ANY (udp_v4_get_port), in6addr_any (udp_v6_get_port)


def lport_inuse2(table: UdpTable, sk: Sock, snum: int) -> tuple[Sock | None, str]:
    """udp_lib_get_port's hash2 check: udp_lib_lport_inuse2 over the slot of sk's address (its
    first match decides), then, unless that found a conflict and unless it is the same slot,
    over the wildcard's. Every socket that can match sk is in one of the two slots (a match is
    the same address or a wildcard, hash2_key); a slot's other sockets, of other addresses,
    ports or namespaces, never match, so the walk is the namespace's own."""
    own = hash2_key(sk)
    for slot in (own,) if own == NULL_SLOT else (own, NULL_SLOT):
        for sk2 in table.slot(snum, slot):
            if not _matches(sk, sk2):
                continue
            if _shares_by_reuseport(sk, sk2):
                break  # res = 0 for this slot: on to the wildcard's
            return sk2, f"udp_lib_lport_inuse2: {sk.name} conflicts with {sk2.describe()}, the first match in its slot"
    return None, "udp_lib_lport_inuse2: no conflict first in the address's or the wildcard's hash2 slot"


def port_blocked(table: UdpTable, sk: Sock, port: int) -> bool:
    """udp_lib_lport_inuse with a bitmap (the port-0 search): the port is marked if any socket
    on it matches and does not share by SO_REUSEPORT (a sharer does not end this walk)."""
    return any(_matches(sk, sk2) and not _shares_by_reuseport(sk, sk2) for sk2 in table.chain(port))


class FreeRange(PortSet):
    """The ports of [lo, hi] but `holes` (sorted): what the port-0 search may return (never
    empty: search_candidates gives no set when no port is free)."""

    def __init__(self, lo: int, hi: int, holes: list[int]):
        self.lo, self.hi, self.holes = lo, hi, holes

    def __len__(self) -> int:
        return self.hi - self.lo + 1 - len(self.holes)

    def __contains__(self, port: object) -> bool:
        if not isinstance(port, int) or not self.lo <= port <= self.hi:
            return False
        i = bisect_left(self.holes, port)
        return i == len(self.holes) or self.holes[i] != port

    def __iter__(self) -> Iterator[int]:
        return (p for p in range(self.lo, self.hi + 1) if p in self)

    def __getitem__(self, k):  # type: ignore[override]
        """The k-th free port, 0 <= k < len (what random.choice asks for)."""
        if not 0 <= k < len(self):
            raise IndexError(k)
        # the k-th free port: the smallest p with p - lo - holes(<= p) == k
        lo, hi = self.lo + k, self.hi
        while lo < hi:
            mid = (lo + hi) // 2
            if mid - self.lo + 1 - bisect_right(self.holes, mid) > k:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def runs(self) -> str:
        runs: list[str] = []
        start = self.lo
        total = 0
        for h in [*self.holes, self.hi + 1]:
            if h > start:
                total += 1
                if len(runs) < RUNS_SHOWN:
                    runs.append(str(start) if h - 1 == start else f"{start}-{h - 1}")
            start = h + 1
        more = f", ... ({total - RUNS_SHOWN} more runs)" if total > RUNS_SHOWN else ""
        return ", ".join(runs) + more


def search_candidates(table: UdpTable, sk: Sock, low: int, high: int,
                      reserved: frozenset[int]) -> PortChoice | None:
    """udp_lib_get_port, snum 0: from a random first port, every primary slot in turn, and in a
    slot every port of [low, high] with that hash by steps of an odd multiple of the table
    size, so every port of the range is tried; it takes the first neither marked in the
    slot's bitmap nor reserved (inet_is_local_reserved_port). None when there is none."""
    holes = sorted({p for p in table.chains if low <= p <= high and port_blocked(table, sk, p)}
                   | {p for p in reserved if low <= p <= high})
    free = FreeRange(low, high, holes)
    if not len(free):
        return None
    return PortChoice(free, "udp_lib_get_port: any free port of the range, from a random start")


def udp_lib_get_port(table: UdpTable, sk: Sock, snum: int, rules: BindRules,
                     find_open_port: Callable[[Sock], int | None]) -> PortResult:
    """udp_lib_get_port (udp_v4_get_port, udp_v6_get_port): take port snum, or for 0 the port
    find_open_port picks, and hash sk on it."""
    if not snum:
        port = find_open_port(sk)
        if port is None:
            return PortResult("EADDRINUSE", 0, "udp_lib_get_port: no free port in the range")
        table.add(sk, port)
        return PortResult(None, port, f"udp_lib_get_port: picked port {port}")
    holder, why = lport_inuse(table, sk, snum)
    # 5.10 has no inet_use_hash2_on_bind: every bind past 10 sockets checks hash2 slots
    if (table.slot_sharers(snum) > HASH2_CHAIN_LEN
            and (not rules.bhash2 or inet_use_hash2_on_bind(sk, rules))):
        # the chain is walked after all if hslot->count < hslot2->count: the model takes the
        # slots to hold the namespace's own sockets only (as it takes the chain's count), and
        # says where the chain's walk would differ
        holder2, why2 = lport_inuse2(table, sk, snum)
        differs = "" if (holder is None) == (holder2 is None) else f"; the chain's walk would differ: {why}"
        holder, why = holder2, (f"{why2} (more than {HASH2_CHAIN_LEN} sockets in the port's chain, "
                                f"so the hash2 slots decide{differs})")
    if holder is not None:
        return PortResult("EADDRINUSE", snum, why)
    table.add(sk, snum)
    return PortResult(None, snum, why)
