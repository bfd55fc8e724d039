"""Kernel profiles: which algorithm each kernel version uses (DESIGN §6).

A rule that changed between versions reads a field here, never `uname`. Each field names the
source that justifies it. Profiles for other versions (5.10, 6.1, 6.12, 7.2, 3.9) come with the
multi-kernel work; until then an unknown kernel runs under the nearest older profile, and the
report says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """What one kernel version does, field by field."""

    name: str
    version: tuple[int, int]
    # inet_csk_get_port uses bhash2 (per port+address buckets) and checks a specific-address
    # bind against the wildcard buckets with inet_bhash2_addr_any_conflict (6.1+,
    # net/ipv4/inet_connection_sock.c).
    bhash2: bool
    # inet_csk_find_open_port retries with relax=true when net.ipv4.ip_autobind_reuse is set
    # (5.7+, net/ipv4/inet_connection_sock.c).
    autobind_reuse: bool
    # bind(port 0) scans with offset |= 1, preferring the parity opposite to `low`, and starts in
    # the lower half of the range for SO_REUSEADDR sockets (4.6+, inet_csk_find_open_port).
    bind_prefers_odd: bool


# Linux 6.18, this project's host kernel. Sources read: Debian linux-source-6.12 and -7.2; the
# functions modelled are identical in both (inet_csk_get_port, inet_csk_bind_conflict,
# inet_bind_conflict, inet_csk_find_open_port, inet_csk_update_fastreuse, __inet_bind,
# __inet_listen_sk, inet_csk_listen_start, __inet_hash, inet_reuseport_add_sock).
LINUX_6_18 = Profile(
    name="6.18",
    version=(6, 18),
    bhash2=True,
    autobind_reuse=True,
    bind_prefers_odd=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (LINUX_6_18,)}


def parse_release(release: str) -> tuple[int, int]:
    """'6.18.44-fc-v657' -> (6, 18)."""
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        raise ValueError(f"not a kernel release: {release!r}")
    return int(m.group(1)), int(m.group(2))


def profile_for_release(release: str) -> tuple[Profile, str]:
    """The profile for a running kernel, and a note when it is not an exact match."""
    version = parse_release(release)
    exact = [p for p in PROFILES.values() if p.version == version]
    if exact:
        return exact[0], ""
    older = sorted((p for p in PROFILES.values() if p.version <= version), key=lambda p: p.version)
    chosen = older[-1] if older else min(PROFILES.values(), key=lambda p: p.version)
    return chosen, f"no profile for {release}; using the {chosen.name} profile"
