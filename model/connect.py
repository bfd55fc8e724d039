"""connect(): the port __inet_hash_connect picks and the 4-tuple test __inet_check_established
makes (net/ipv4/inet_hashtables.c, net/ipv4/tcp_ipv4.c tcp_twsk_unique).

The kernel starts its scan at an offset from a keyed hash and a random perturbation table
(`secure_ipv4_port_ephemeral`, `table_perturb`), which the model cannot know; it enumerates
every starting offset instead, so the set it returns is exactly the set of ports the kernel
can pick. ConnectSearch gets that set from the ports not usable for the 4-tuple's destination
(model.ephemeral.Verdicts), without testing every port of the range at every connect().
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from model.bind import BindTables, inet_sk_bound_l3mdev
from model.ephemeral import (
    FreePorts,
    VerdictCache,
    even_pass_odd_range,
    last_of_parity,
    local_port_range,
)
from model.outcome import PortChoice
from model.sock import Sock, TcpState
from model.sysctl import Sysctls

IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
# IP version, local address, local port, remote address, remote port (addresses as integers:
# cheap to hash, and the model looks one up per SYN)
ConnKey = tuple[int, int, int, int, int]
LOOPBACK_IFINDEX = 1


class EHash(dict):
    """ehash: 4-tuple -> socket (inet_ehash_insert, inet_unhash). Each change marks its local
    port for the port searches' caches (BindTables.touch): connect() tests 4-tuples. It also
    counts the 4-tuples of each (local address, remote address, remote port)."""

    def __init__(self, touch: Callable[[int], None]):
        super().__init__()
        self._touch = touch
        self.peers: dict[tuple[int, int, int, int], int] = {}

    def __setitem__(self, key: ConnKey, sk: Sock) -> None:
        if key not in self:
            peer = key[:2] + key[3:]
            self.peers[peer] = self.peers.get(peer, 0) + 1
        super().__setitem__(key, sk)
        self._touch(key[2])

    def __delitem__(self, key: ConnKey) -> None:
        super().__delitem__(key)
        peer = key[:2] + key[3:]
        self.peers[peer] -= 1
        if not self.peers[peer]:
            del self.peers[peer]
        self._touch(key[2])

    def has_peer(self, local: int, remote: int, rport: int, version: int) -> bool:
        """Does some 4-tuple join this local address to this remote address and port?"""
        return (version, local, remote, rport) in self.peers

    def _unsupported(self, *args, **kwargs):
        raise TypeError("EHash: change entries one at a time")

    # del is the one way out (the model never pops): each change keeps `peers` and the searches' marks
    pop = popitem = clear = update = setdefault = __ior__ = _unsupported  # type: ignore[assignment]


def conn_key(local: IPAddr, lport: int, remote: IPAddr, rport: int) -> ConnKey:
    """An ehash key as inet_match compares it; v4-mapped addresses as IPv4 (a dual-stack
    socket's IPv4 connection is matched by its IPv4 addresses)."""
    if isinstance(local, ipaddress.IPv6Address) and local.ipv4_mapped is not None:
        local = local.ipv4_mapped
    if isinstance(remote, ipaddress.IPv6Address) and remote.ipv4_mapped is not None:
        remote = remote.ipv4_mapped
    return local.version, int(local), lport, int(remote), rport


def key_of(sk: Sock) -> ConnKey:
    """The 4-tuple a connected (or TIME_WAIT) socket is hashed under (kept once hashed)."""
    if sk.ehash_key is not None:
        return sk.ehash_key
    assert sk.daddr is not None
    return conn_key(sk.local_ip(), sk.num, sk.daddr, sk.dport)


@dataclass(frozen=True)
class Unique:
    """__inet_check_established's answer: may sk use this 4-tuple, and the TIME_WAIT socket it
    takes over (the kernel kills it) when so."""

    ok: bool
    tw: Sock | None
    reason: str


def _is_loopback(addr: IPAddr | None) -> bool:
    return addr is not None and addr.is_loopback


def tcp_twsk_unique(tw: Sock, twp: bool, sysctls: Sysctls) -> tuple[bool, str]:
    """tcp_twsk_unique: may a new connection take over a TIME_WAIT socket's 4-tuple?

    twp is false when connect() runs on a socket whose port is already bound (inet_hash_connect
    passes NULL): then a TIME_WAIT with a recent timestamp is always taken over. In the port
    scan it needs tcp_tw_reuse, which is 0 for a FIN_WAIT2 substate, and at its default 2 only
    for loopback traffic. Scenarios connect only to non-loopback addresses, so the scan never
    reaches the clock test (`time_after32(ktime_get_seconds(), ts_recent_stamp)`) here.
    """
    reuse = sysctls.tcp_tw_reuse
    if tw.tw_substate == TcpState.FIN_WAIT2:
        reuse = 0
    if reuse == 2:
        loopback = (tw.bound_dev_if == LOOPBACK_IFINDEX or _is_loopback(tw.daddr)
                    or _is_loopback(tw.local_ip()))
        if not loopback:
            reuse = 0
    if not tw.ts_recent_stamp:
        return False, f"{tw.name} has no timestamp (tw_ts_recent_stamp 0)"
    if not twp:
        return True, f"{tw.name} is taken over: a bound port and a recent timestamp"
    if reuse:
        raise ValueError("tcp_tw_reuse on loopback depends on the clock; not modelled")
    return False, f"{tw.name} holds the 4-tuple and tcp_tw_reuse does not apply"


def check_established(ehash: dict[ConnKey, Sock], key: ConnKey, twp: bool,
                      sysctls: Sysctls) -> Unique:
    """__inet_check_established: is the 4-tuple free (or held by a TIME_WAIT it may take)?"""
    sk2 = ehash.get(key)
    if sk2 is None:
        return Unique(True, None, "no socket holds the 4-tuple")
    if sk2.state == TcpState.TIME_WAIT:
        ok, why = tcp_twsk_unique(sk2, twp, sysctls)
        return Unique(ok, sk2 if ok else None, why)
    return Unique(False, None, f"{sk2.name} ({sk2.state.value}) holds the 4-tuple")


def scan(low: int, high: int, remaining: int, step: int, offset: int) -> Iterable[int]:
    """The ports one pass of __inet_hash_connect visits from `offset`."""
    port = low + offset
    for _ in range(0, remaining, step):
        if port >= high:
            port -= remaining
        yield port
        port += step


def hash_connect_candidates(
    sk: Sock, usable: Callable[[int], bool], sysctls: Sysctls, range_step1: bool = True
) -> PortChoice | None:
    """__inet_hash_connect: every port the scan can stop at, over every starting offset.

    Without IP_LOCAL_PORT_RANGE the first pass tries ports of low's parity (offset &= ~1) and
    the second the other parity; with it the step is 1 and there is one pass (range_step1:
    profile connect_range_step1; before, the socket's range gets the parity passes too).
    `usable` is the per-port test (reserved, bind bucket owned by bind(), 4-tuple taken).
    """
    low, high, local_ports = local_port_range(sk, sysctls)
    local_ports = local_ports and range_step1
    step = 1 if local_ports else 2
    high += 1  # [32768, 60999] -> [32768, 61000[
    remaining = high - low
    if not local_ports and remaining > 1:
        remaining &= ~1
    if remaining <= 0:
        return None
    memo: dict[int, bool] = {}

    def ok(port: int) -> bool:
        got = memo.get(port)
        if got is None:
            got = memo[port] = usable(port)
        return got

    parities = ((0, "low's parity"), (1, "the other parity")) if not local_ports else ((0, ""),)
    if high - low == remaining:
        # Each pass is a rotation over one whole cycle, so over all offsets the port it stops at
        # is any usable port of that pass; a pass finds none only when all offsets do.
        for parity, rule in parities:
            ports = tuple(p for p in range(low + parity, high, step) if ok(p))
            if ports:
                return PortChoice(ports, _rule(low, high, local_ports, rule))
        return None
    found: set[int] = set()
    fails = False
    for offset in sorted({o & ~1 if not local_ports else o for o in range(remaining)}):
        port = next((p for p in scan(low, high, remaining, step, offset) if ok(p)), None)
        if port is None and not local_ports and remaining > 1:
            port = next((p for p in scan(low, high, remaining, step, offset + 1) if ok(p)), None)
        if port is None:
            fails = True
        else:
            found.add(port)
    if not found:
        return None
    return PortChoice(tuple(sorted(found)), _rule(low, high, local_ports, ""), may_fail=fails)


def _rule(low: int, high: int, local_ports: bool, parity: str) -> str:
    what = "IP_LOCAL_PORT_RANGE" if local_ports else "ip_local_port_range"
    return (f"__inet_hash_connect: {what} {low}-{high - 1}"
            + (f", {parity}" if parity else ""))


def port_usable(tables: BindTables, sk: Sock, port: int, key: ConnKey,
                ehash: dict[ConnKey, Sock], sysctls: Sysctls) -> bool:
    """One port of the scan: not reserved; no bind bucket, or one only connect() made
    (fastreuse and fastreuseport both -1) whose 4-tuple is free."""
    if port in sysctls.ip_local_reserved_ports:  # inet_is_local_reserved_port
        return False
    tb = tables.bucket(port, inet_sk_bound_l3mdev(sk))
    if tb is None:
        return True
    if tb.fastreuse >= 0 or tb.fastreuseport >= 0:
        return False
    return check_established(ehash, key, True, sysctls).ok


class ConnectSearch:
    """__inet_hash_connect's candidates from cached verdicts (one Verdicts per source address,
    destination and sysctls): what hash_connect_candidates finds, without calling `usable` on
    every port of the range."""

    def __init__(self, tables: BindTables, cache: VerdictCache):
        self.tables, self.cache = tables, cache

    def candidates(self, sk: Sock, saddr: IPAddr, daddr: IPAddr, dport: int,
                   ehash: dict[ConnKey, Sock], sysctls: Sysctls,
                   range_step1: bool = True) -> PortChoice | None:
        def usable(port: int) -> bool:
            return port_usable(self.tables, sk, port, conn_key(saddr, port, daddr, dport),
                               ehash, sysctls)

        low, high, local_ports = local_port_range(sk, sysctls)
        high += 1
        if local_ports and range_step1 or high - low < 2:
            # step 1 (IP_LOCAL_PORT_RANGE), or one port: the ports listed as before
            return hash_connect_candidates(sk, usable, sysctls, range_step1)
        reserved = sysctls.ip_local_reserved_ports

        def start() -> Iterator[int]:
            yield from reserved
            yield from self.tables.ports()

        # port_usable reads sk only for its l3mdev; the 4-tuple's other three parts and the
        # sysctls complete what it depends on. With no 4-tuple to this peer from saddr yet, no
        # port's 4-tuple is taken: the verdicts are those of any such peer.
        version, local, _, remote, rport = conn_key(saddr, 0, daddr, dport)
        peer = (version, local, remote, rport)
        check = usable
        if isinstance(ehash, EHash) and not ehash.has_peer(local, remote, rport, version):
            peer = None

            def check(port: int) -> bool:  # the same test, where no 4-tuple is taken
                return port_usable(self.tables, sk, port, (0, 0, 0, 0, 0), {}, sysctls)

        key = ("connect", peer, inet_sk_bound_l3mdev(sk), sysctls)
        verdicts = self.cache.get(key, start)
        b = verdicts.refresh(lambda port: not check(port))
        if verdicts.raises:  # tcp_twsk_unique's unmodelled case: raise where the scan would
            return hash_connect_candidates(sk, usable, sysctls, range_step1)
        remaining = (high - low) & ~1
        if high - low == remaining:
            # each pass a rotation over one parity (low's first: offset &= ~1)
            for parity, rule in ((0, "low's parity"), (1, "the other parity")):
                first = low + parity
                found = FreePorts(b, first, last_of_parity(first, high))
                if found.count:
                    return PortChoice(found, _rule(low, high, False, rule))
            return None
        # high - low odd: from an even offset the first pass is as inet_csk_find_open_port's
        # even pass over such a range (ephemeral.even_pass_odd_range); the second, from
        # offset + 1, a rotation over the odd distances
        res = even_pass_odd_range(b, low, high)
        even = FreePorts(b, res.lo, res.hi)
        if not res.fails:
            return PortChoice(even, _rule(low, high, False, ""))
        if not even.count:  # every offset goes on to the second pass
            odd = FreePorts(b, low + 1, high - 2)
            return PortChoice(odd, _rule(low, high, False, "")) if odd.count else None
        # one port of the first pass free, found from some offsets only: listed as before
        return hash_connect_candidates(sk, usable, sysctls, range_step1)
