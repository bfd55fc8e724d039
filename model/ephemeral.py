"""inet_csk_find_open_port: the port bind(0) and listen() on an unbound socket get.

The kernel draws one random offset per scan (`get_random_u32_below(remaining)`); everything
else is deterministic. The model enumerates every offset of a scan phase, so the set it
returns is exactly the set of ports the kernel can pick, and the first phase that can succeed
is the only one the kernel reaches.

Over all offsets a scan's result is "every free port of one parity class", give or take an end
port (Phase results below), so the model keeps, per kind of socket, the ports that are not
free (Verdicts: rechecked only where the bind tables changed) and answers with a FreePorts set
that is counted, ranked and described from them without listing the free ports. Time per
search and memory per result are then O(log n) and O(1), not O(range) and O(bound sockets).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

from model.bind import (
    BindTables,
    inet_bhash2_addr_any_conflict,
    inet_csk_bind_conflict,
    inet_sk_bound_l3mdev,
    inet_use_hash2_on_bind,
)
from model.outcome import RUNS_SHOWN, PortChoice, PortSet
from model.profiles import Profile
from model.sock import SK_CAN_REUSE, Sock
from model.sysctl import Sysctls


@dataclass(frozen=True)
class ScanPhase:
    """One pass of the scan: which half of the range, and whether conflicts are relaxed."""

    attempt_half: int  # 0 whole range, 1 lower half, 2 upper half
    relax: bool

    def describe(self) -> str:
        half = {0: "whole range", 1: "lower half", 2: "upper half"}[self.attempt_half]
        return f"inet_csk_find_open_port: {half}{', relaxed (ip_autobind_reuse)' if self.relax else ''}"


def phases(sk: Sock, profile: Profile, sysctls: Sysctls) -> Iterator[ScanPhase]:
    """The ports_exhausted / other_half_scan order of inet_csk_find_open_port."""
    for relax in (False, True):
        if relax and not (profile.autobind_reuse and sysctls.ip_autobind_reuse):
            return
        # attempt_half = (sk->sk_reuse == SK_CAN_REUSE) ? 1 : 0
        if sk.reuse == SK_CAN_REUSE:
            yield ScanPhase(1, relax)
            yield ScanPhase(2, relax)
        else:
            yield ScanPhase(0, relax)


def local_port_range(sk: Sock, sysctls: Sysctls) -> tuple[int, int, bool]:
    """inet_sk_get_local_port_range: the namespace's range, narrowed by the socket's
    IP_LOCAL_PORT_RANGE where its bounds fall inside it; true when the socket has one."""
    low, high = sysctls.ip_local_port_range
    if not sk.local_port_range:
        return low, high, False
    sk_lo, sk_hi = sk.local_port_range & 0xFFFF, sk.local_port_range >> 16
    if low <= sk_lo <= high:
        low = sk_lo
    if low <= sk_hi <= high:
        high = sk_hi
    return low, high, True


def phase_range(sk: Sock, phase: ScanPhase, sysctls: Sysctls) -> tuple[int, int, int]:
    """low, high (exclusive) and remaining for a phase, as the kernel computes them."""
    low, high, _ = local_port_range(sk, sysctls)
    high += 1  # [32768, 60999] -> [32768, 61000[
    attempt_half = phase.attempt_half if high - low >= 4 else 0
    if attempt_half:
        half = low + (((high - low) >> 2) << 1)
        if attempt_half == 1:
            high = half
        else:
            low = half
    remaining = high - low
    if remaining > 1:
        remaining &= ~1
    return low, high, remaining


def scan_order(low: int, high: int, remaining: int, offset: int) -> Iterator[int]:
    """The ports one scan visits for a drawn offset: offset|1's parity, then offset-1's."""
    offset |= 1  # "We do the opposite [parity] to not pollute connect() users."
    while True:
        port = low + offset
        for _ in range(0, remaining, 2):
            if port >= high:
                port -= remaining
            yield port
            port += 2
        offset -= 1
        if offset & 1:
            return


class Blocked:
    """The ports one kind of socket may not take, as a sorted list per parity (and the pairs
    p, p + 2 both blocked, for counting runs). Every change is stamped with the version it
    took effect in, so a FreePorts made at an earlier version still answers `in`."""

    def __init__(self) -> None:
        self.now: set[int] = set()
        self.lists: tuple[list[int], list[int]] = ([], [])  # by parity
        self.pairs: tuple[list[int], list[int]] = ([], [])  # p where p and p + 2 are blocked
        self.stamps: dict[int, list[int]] = {}
        self.version = 0

    def set(self, port: int, blocked: bool) -> None:
        if (port in self.now) == blocked:
            return
        pairs = self.pairs[port & 1]
        if blocked:
            self.now.add(port)
            insort(self.lists[port & 1], port)
            if port - 2 in self.now:
                insort(pairs, port - 2)
            if port + 2 in self.now:
                insort(pairs, port)
        else:
            self.now.discard(port)
            _remove(self.lists[port & 1], port)
            if port - 2 in self.now:
                _remove(pairs, port - 2)
            if port + 2 in self.now:
                _remove(pairs, port)
        self.stamps.setdefault(port, []).append(self.version)

    def blocked_at(self, port: int, version: int) -> bool:
        stamps = self.stamps.get(port, ())
        later = len(stamps) - bisect_right(stamps, version)  # changes made after `version`
        return (port in self.now) != bool(later & 1)

    def count(self, lo: int, hi: int) -> int:
        """Blocked ports of lo's parity in [lo, hi]."""
        blocked = self.lists[lo & 1]
        return bisect_right(blocked, hi) - bisect_left(blocked, lo)

    def free(self, lo: int, hi: int) -> int:
        """Free ports of lo's parity in [lo, hi] (hi of lo's parity)."""
        return (hi - lo) // 2 + 1 - self.count(lo, hi) if hi >= lo else 0

    def kth_free(self, lo: int, k: int) -> int:
        """The free port of rank k (from 0) among lo, lo + 2, ...: the blocked ports below it
        are those before which fewer than k + 1 ports are free."""
        blocked = self.lists[lo & 1]
        j0 = bisect_left(blocked, lo)
        a, b = 0, len(blocked) - j0
        while a < b:
            mid = (a + b) // 2
            if (blocked[j0 + mid] - lo) // 2 - mid > k:
                b = mid
            else:
                a = mid + 1
        return lo + 2 * (k + a)

    def run_end(self, port: int, hi: int) -> int:
        """The last port of the run of free ports from `port` (step 2), at most hi."""
        blocked = self.lists[port & 1]
        i = bisect_right(blocked, port)
        return min(blocked[i] - 2, hi) if i < len(blocked) else hi

    def runs(self, lo: int, hi: int) -> int:
        """How many runs (step 2) the free ports of [lo, hi] make: one more than the blocked
        ports, less each blocked pair and a blocked end (a run is ended by a blocked port)."""
        pairs = self.pairs[lo & 1]
        n_pairs = bisect_right(pairs, hi - 2) - bisect_left(pairs, lo)
        return (self.count(lo, hi) + 1 - n_pairs - (lo in self.now) - (hi in self.now))


def _remove(sorted_list: list[int], value: int) -> None:
    del sorted_list[bisect_left(sorted_list, value)]


class FreePorts(PortSet):
    """The free ports of lo, lo + 2, ..., hi when `blocked` was at `version`: a scan's result
    over every offset, counted and described when made."""

    def __init__(self, blocked: Blocked, lo: int, hi: int):
        self.blocked, self.lo, self.hi, self.version = blocked, lo, hi, blocked.version
        self.count = blocked.free(lo, hi)
        self._runs = self._describe()

    def __len__(self) -> int:
        return self.count

    def __contains__(self, port: object) -> bool:
        return (isinstance(port, int) and self.lo <= port <= self.hi and not (port - self.lo) & 1
                and not self.blocked.blocked_at(port, self.version))

    def __iter__(self) -> Iterator[int]:
        return (p for p in range(self.lo, self.hi + 1, 2) if p in self)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return tuple(self)[i]
        if i < 0:
            i += self.count
        if not 0 <= i < self.count:
            raise IndexError(i)
        if self.version == self.blocked.version:
            return self.blocked.kth_free(self.lo, i)
        return tuple(self)[i]

    def runs(self) -> str:
        return self._runs

    def _describe(self) -> str:
        """What outcome._runs writes for these ports: consecutive ones of a parity differ by
        2, so a run is a stretch between blocked ports."""
        b = self.blocked
        total = b.runs(self.lo, self.hi)
        shown: list[str] = []
        rank = 0
        while rank < self.count and len(shown) < RUNS_SHOWN:
            first = b.kth_free(self.lo, rank)
            last = b.run_end(first, self.hi)
            shown.append(str(first) if last == first else f"{first}-{last}/2")
            rank += (last - first) // 2 + 1
        if total > RUNS_SHOWN:
            return ", ".join(shown) + f", ... ({total - RUNS_SHOWN} more runs)"
        return ", ".join(shown)


class Verdicts:
    """Blocked ports for one kind of socket (what `blocked(port)` answers depends only on the
    key it was made for), kept current by rechecking only the ports whose bind buckets (or
    owners, or 4-tuples) changed since: BindTables.touch marks them."""

    check_all = False  # tests: recheck every port at every search and compare

    def __init__(self, tables: BindTables, start: Iterator[int]):
        self.tables = tables
        self.blocked = Blocked()
        self.raises: set[int] = set()  # ports whose check raised (a case the model leaves)
        self.dirty: set[int] = set(start)
        tables.watchers.append(self.dirty)

    def refresh(self, blocked: Callable[[int], bool]) -> Blocked:
        if self.dirty:
            self.blocked.version += 1
            for port in self.dirty:
                try:
                    self.blocked.set(port, blocked(port))
                    self.raises.discard(port)
                except ValueError:
                    self.raises.add(port)
            self.dirty.clear()
        if self.check_all:
            ports = set(self.tables.ports()) | self.blocked.now
            assert {p for p in ports if p not in self.raises and blocked(p)} == (
                self.blocked.now - self.raises), "a cached port verdict is stale"
        return self.blocked

    def close(self) -> None:
        self.tables.watchers.remove(self.dirty)


class VerdictCache:
    """The Verdicts of the last few kinds of socket that searched (least recently used go)."""

    size = 8

    def __init__(self, tables: BindTables):
        self.tables = tables
        self.entries: dict[Hashable, Verdicts] = {}

    def get(self, key: Hashable, start: Callable[[], Iterator[int]]) -> Verdicts:
        v = self.entries.pop(key, None)
        if v is None:
            v = Verdicts(self.tables, start())
            if len(self.entries) >= self.size:
                self.entries.pop(next(iter(self.entries))).close()
        self.entries[key] = v
        return v


def last_of_parity(first: int, high: int) -> int:
    """The last of first, first + 2, ... below high."""
    return first + 2 * ((high - 1 - first) // 2)


@dataclass(frozen=True)
class PassResult:
    """What one parity pass finds over every offset: the ports it stops at (lo, lo + 2, ..., hi
    less the blocked), and whether some offset finds none."""

    lo: int
    hi: int
    fails: bool


def even_pass_odd_range(b: Blocked, low: int, high: int) -> PassResult:
    """A pass over the ports at even distance from low when high - low is odd (remaining =
    high - low - 1 = 2m): from offset e it visits e, e + 2, ..., 2m, then wraps (port -=
    remaining) to 2, ..., e - 2, and from e = 0 it visits 0, ..., 2m - 2. So every free port
    but 2m is found from itself, and 2m from an offset just below it unless 2m - 2 is free
    (or there is no offset but 0, m = 1); offset 0 fails when [0, 2m - 2] has no free port,
    the others when [2, 2m] has none."""
    m = (high - low - 1) // 2
    top, below = high - 1, high - 3
    hi = below if m == 1 or b.free(below, below) else top
    fails = b.free(low, below) == 0 or (m >= 2 and b.free(low + 2, top) == 0)
    return PassResult(low, hi, fails)


class PortFinder:
    """Answers 'is port p free for sk in this phase?' with the kernel's conflict checks, and
    which ports a phase can stop at (keeping the answers per kind of socket: Verdicts)."""

    def __init__(self, tables: BindTables, sysctls: Sysctls, cache: VerdictCache | None = None):
        self.tables = tables
        self.sysctls = sysctls
        self.cache = cache or VerdictCache(tables)

    def free(self, sk: Sock, port: int, relax: bool) -> bool:
        if port in self.sysctls.ip_local_reserved_ports:  # inet_is_local_reserved_port
            return False
        l3mdev = inet_sk_bound_l3mdev(sk)
        if inet_use_hash2_on_bind(sk, self.tables.rules) and inet_bhash2_addr_any_conflict(
            self.tables, sk, port, l3mdev, relax, False
        ):
            return False
        tb = self.tables.bucket(port, l3mdev)
        if tb is None:
            return True
        tb2 = self.tables.bucket2(port, l3mdev, sk)
        return inet_csk_bind_conflict(sk, tb, tb2, relax, False, self.tables.rules) is None

    def blocked(self, sk: Sock, relax: bool) -> Blocked | None:
        """The ports not free for sk, from the cache of sockets like it; None when sk is itself
        an owner (inet_bind_conflict skips sk2 == sk, so its answers are its own)."""
        if sk.bind_hash is not None or sk.bind2_hash is not None:
            return None
        cb_ok = sk.reuseport_cb is None or sk.reuseport_cb.num_closed_socks > 0
        # everything free() reads of sk (inet_bind_conflict, inet_rcv_saddr_equal, the bhash2
        # bucket match), and the sysctl it reads
        key = ("bind", relax, sk.family, sk.rcv_saddr, sk.v6_rcv_saddr, sk.ipv6only, sk.uid,
               sk.reuse, sk.reuseport, sk.bound_dev_if, cb_ok,
               self.sysctls.ip_local_reserved_ports)
        reserved = self.sysctls.ip_local_reserved_ports

        def start() -> Iterator[int]:
            yield from reserved
            yield from self.tables.ports()

        return self.cache.get(key, start).refresh(lambda port: not self.free(sk, port, relax))

    def candidates(self, sk: Sock, profile: Profile) -> PortChoice | None:
        """Every port the kernel can return. A phase runs only for the offsets the phases
        before it failed on, so later phases add ports only while an earlier one can fail."""
        found_in: list[FreePorts | set[int]] = []
        rules: list[str] = []
        for phase in phases(sk, profile, self.sysctls):
            found, fails, rule = self._phase(sk, phase)
            if found:
                found_in.append(found)
                rules.append(rule)
            if not fails:
                return PortChoice(_union(found_in), "; then ".join(rules))
        if not found_in:
            return None
        return PortChoice(_union(found_in), "; then ".join(rules), may_fail=True)

    def _phase(self, sk: Sock, phase: ScanPhase) -> tuple[FreePorts | set[int], bool, str]:
        """One phase over every offset: the ports it stops at, and whether some offset finds
        none (the kernel then goes on to the next phase)."""
        low, high, remaining = phase_range(sk, phase, self.sysctls)
        if remaining <= 0:
            return set(), True, phase.describe()
        b = self.blocked(sk, phase.relax) if remaining > 1 else None
        if b is None:
            return self._phase_by_offsets(sk, phase, low, high, remaining)
        rotation = high - low == remaining
        # From an odd offset the scan visits every port at an odd distance from low once
        # (a rotation, port -= remaining at high: remaining is even, and so is the wrap when
        # high - low is odd, from high to low + 1); over all offsets the first free port of a
        # scan is any free port of that parity, and every offset finds one if one is free.
        odd = FreePorts(b, low + 1, last_of_parity(low + 1, high))
        if odd.count:
            return odd, False, f"{phase.describe()}, odd offsets from {low}" if rotation else (
                phase.describe())
        # "offset--": the even distances, a rotation too when high - low is even
        if rotation:
            even = FreePorts(b, low, high - 2)
            if even.count:
                return even, False, f"{phase.describe()}, even offsets from {low}"
            return set(), True, phase.describe()
        res = even_pass_odd_range(b, low, high)
        found = FreePorts(b, res.lo, res.hi)
        return (found if found.count else set()), res.fails, phase.describe()

    def _phase_by_offsets(self, sk: Sock, phase: ScanPhase, low: int, high: int,
                          remaining: int) -> tuple[set[int], bool, str]:
        """The phase scanned offset by offset in the kernel's order (inet_csk_find_open_port's
        loop): a range of one port, or a socket that is itself an owner."""
        memo: dict[int, bool] = {}
        found: set[int] = set()
        fails = False
        for offset in sorted({r | 1 for r in range(remaining)}):
            for port in scan_order(low, high, remaining, offset):
                ok = memo.get(port)
                if ok is None:
                    ok = memo[port] = self.free(sk, port, phase.relax)
                if ok:
                    found.add(port)
                    break
            else:
                fails = True
        return found, fails, phase.describe()


def _union(found_in: list[FreePorts | set[int]]) -> tuple[int, ...] | FreePorts:
    """One phase's FreePorts as they are; the ports of several (an earlier phase found one or
    two and failed for other offsets) listed."""
    if len(found_in) == 1 and isinstance(found_in[0], FreePorts):
        return found_in[0]
    ports: set[int] = set()
    for found in found_in:
        ports |= set(found)
    return tuple(sorted(ports))
