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
    # inet_csk_find_open_port retries with relax=true when net.ipv4.ip_autobind_reuse is set
    # (5.7+, net/ipv4/inet_connection_sock.c).
    autobind_reuse: bool
    # inet_ehashfn = lport + jhash_3words(laddr, faddr, fport, secret) (6.15+), instead of
    # jhash_3words(laddr, faddr, lport << 16 | fport, secret) (net/ipv4/inet_hashtables.c).
    ehash_lport_outside: bool
    # A port connect() picked carries SOCK_CONNECT_BIND; when bind()-made owners leave a bucket
    # whose remaining tb2s are all connect()-made, inet_bind_bucket_destroy makes it
    # connect()-only again (fastreuse = fastreuseport = -1) (net/ipv4/inet_hashtables.c,
    # "tcp: Update bind bucket state on port release").
    connect_bind_reset: bool = False


# Linux 6.18, this project's host kernel. Sources read: Debian linux-source-6.12 (6.12.117) and
# -7.2 (7.2.13), which bracket it; the functions modelled differ between the two only by renames
# (sock_i_uid -> sk_uid) and by tb2 copies of the fast-path fields that only connect() reads:
# inet_csk_get_port, inet_csk_bind_conflict, inet_bind_conflict, inet_csk_find_open_port,
# inet_csk_update_fastreuse, sk_reuseport_match, __inet_bind, __inet_listen_sk,
# inet_csk_listen_start, inet_reuseport_add_sock. The model uses bhash2 (6.1+) throughout;
# version fields for bhash2, the listener hash and the rest come with the other profiles.
# connect_bind_reset: commit d57f4b874946 "tcp: Update bind bucket state on port release",
# first in v6.18-rc1 (absent from 6.12.117, present in 7.2.13: sk_is_connect_bind,
# inet_bind_bucket_destroy).
LINUX_6_18 = Profile(name="6.18", version=(6, 18), autobind_reuse=True, ehash_lport_outside=True,
                     connect_bind_reset=True)

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
