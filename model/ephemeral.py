"""inet_csk_find_open_port: the port bind(0) and listen() on an unbound socket get.

The kernel draws one random offset per scan (`get_random_u32_below(remaining)`); everything
else is deterministic. The model enumerates every offset of a scan phase, so the set it
returns is exactly the set of ports the kernel can pick, and the first phase that can succeed
is the only one the kernel reaches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from model.bind import (
    BindTables,
    inet_bhash2_addr_any_conflict,
    inet_csk_bind_conflict,
    inet_sk_bound_l3mdev,
    inet_use_hash2_on_bind,
)
from model.outcome import PortChoice
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


class PortFinder:
    """Answers 'is port p free for sk in this phase?' with the kernel's conflict checks."""

    def __init__(self, tables: BindTables, sysctls: Sysctls):
        self.tables = tables
        self.sysctls = sysctls

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

    def candidates(self, sk: Sock, profile: Profile) -> PortChoice | None:
        """Every port the kernel can return. A phase runs only for the offsets the phases
        before it failed on, so later phases add ports only while an earlier one can fail."""
        ports: set[int] = set()
        rules: list[str] = []
        for phase in phases(sk, profile, self.sysctls):
            found, fails, rule = self._phase(sk, phase)
            if found:
                ports |= found
                rules.append(rule)
            if not fails:
                return PortChoice(tuple(sorted(ports)), "; then ".join(rules))
        if not ports:
            return None
        return PortChoice(tuple(sorted(ports)), "; then ".join(rules), may_fail=True)

    def _phase(self, sk: Sock, phase: ScanPhase) -> tuple[set[int], bool, str]:
        """One phase over every offset: the ports it stops at, and whether some offset finds
        none (the kernel then goes on to the next phase)."""
        low, high, remaining = phase_range(sk, phase, self.sysctls)
        if remaining <= 0:
            return set(), True, phase.describe()
        if high - low == remaining and remaining > 1:
            # Each scan is a rotation of one cycle: from an odd offset, every port at an odd
            # distance from low, then (offset - 1) every even one. Over all offsets the first
            # free port of a scan is any free port of the first parity that has one. A port
            # with no bind bucket (and not reserved) is free without a check: only bucketed
            # ports need the conflict walk.
            used = {port for port, _ in self.tables.bhash}
            reserved = self.sysctls.ip_local_reserved_ports
            for parity, rule in ((1, "odd offsets"), (0, "even offsets")):
                free = {p for p in range(low + parity, high, 2) if p not in reserved
                        and (p not in used or self.free(sk, p, phase.relax))}
                if free:
                    return free, False, f"{phase.describe()}, {rule} from {low}"
            return set(), True, phase.describe()
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
