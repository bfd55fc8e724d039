"""Kernel profiles: which algorithm each kernel version uses (DESIGN §6).

A rule that changed between versions reads a field here, never `uname`. Each field names the
source that justifies it. 6.18 is the host's and checked against it; 6.12 and 6.1 are built from
Debian's sources for the fields modelled so far, and the "-bhash2" profiles are mainline's bhash2
regression windows. An unknown kernel runs under the nearest older profile, and the report
says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from model.bind import BindRules


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
    # How the bind conflict check is built: bhash2 and its 6.1-6.8 regressions (model/bind.py).
    bind: BindRules = field(default_factory=BindRules)


# Linux 6.18, this project's host kernel. Sources read: Debian linux-source-6.12 (6.12.117) and
# -7.2 (7.2.13), which bracket it; the functions modelled differ between the two only by renames
# (sock_i_uid -> sk_uid), by connect_bind_reset below, and by ip_local_port_step_width (7.1+,
# default 0, not modelled): inet_csk_get_port, inet_csk_bind_conflict, inet_bind_conflict,
# inet_csk_find_open_port, inet_csk_update_fastreuse, sk_reuseport_match, __inet_bind,
# __inet_listen_sk, inet_csk_listen_start, inet_reuseport_add_sock, __inet_hash_connect,
# __inet_check_established, tcp_twsk_unique, tcp_v4_connect, tcp_v6_connect.
# connect_bind_reset: commit d57f4b874946 "tcp: Update bind bucket state on port release",
# first in v6.18-rc1 (absent from 6.12.117, present in 7.2.13: sk_is_connect_bind,
# inet_bind_bucket_destroy).
LINUX_6_18 = Profile(name="6.18", version=(6, 18), autobind_reuse=True, ehash_lport_outside=True,
                     connect_bind_reset=True)

# The bhash2 regression windows (model/bind.py BindRules). These profiles differ from 6.18 in
# the bind rules and in the two fields dated above (ehash_lport_outside 6.15, connect_bind_reset
# 6.18); other version differences (DESIGN §6) belong to the multi-kernel profiles, so they are
# exercised by unit tests on bind sequences, not against a booted kernel.
# Mainline v6.1 and v6.2: bhash2 as merged (28044fc1d495), before any fix.
MAINLINE_6_2 = Profile(
    name="6.2-bhash2", version=(6, 2), autobind_reuse=True, ehash_lport_outside=False,
    bind=BindRules(any_family_strict=True, v4_misses_v4mapped_any=True,
                   v4_misses_v4mapped_addr=True, v4mapped_specific_uses_bhash2=False,
                   v6only_skip_af_inet_only=True, v6_misses_v4mapped_any=True))
# v6.3-v6.5: d9ba99342855 fixed the dual-stack wildcard; the v4-mapped ones remain, and the
# wildcard walk stops at its first match (visible only now that AF_INET matches [::]).
MAINLINE_6_5 = Profile(
    name="6.5-bhash2", version=(6, 5), autobind_reuse=True, ehash_lport_outside=False,
    bind=BindRules(v4_misses_v4mapped_any=True, v4_misses_v4mapped_addr=True,
                   addr_any_first_match_only=True, v4mapped_specific_uses_bhash2=False,
                   v6only_skip_af_inet_only=True, v6_misses_v4mapped_any=True))
# v6.8.0-6.8.4: the v4-mapped fixes (6.6) and 5e07e672412b (v4-mapped specific addresses use
# bhash2, 6.8-rc1) are in; d91ef1e1b55f and ea111449501e (6.9-rc3, 6.8.5) are not.
MAINLINE_6_8 = Profile(
    name="6.8-bhash2", version=(6, 8), autobind_reuse=True, ehash_lport_outside=False,
    bind=BindRules(addr_any_first_match_only=True, v6only_skip_af_inet_only=True))
# Debian bookworm's 6.1.192 (linux-source-6.1): every fix is backported, but 6.1.168 took
# 5e07e672412b without 06a8c04f8994, so inet_bind2_bucket_match_addr_any (inet_hashtables.c:840)
# still returns ipv6_addr_any() for an AF_INET6 socket on an AF_INET6 bucket: a v4-mapped
# specific bind misses an AF_INET6 ::ffff:0.0.0.0 owner.
DEBIAN_6_1 = Profile(
    name="6.1", version=(6, 1), autobind_reuse=True, ehash_lport_outside=False,
    bind=BindRules(v6_misses_v4mapped_any=True))
# Linux 6.12 (Debian trixie, 6.12.117): the bind rules of 6.18, without connect_bind_reset, and
# the older inet_ehashfn (the lport change is 9544d60a2605, v6.15-rc1).
LINUX_6_12 = Profile(name="6.12", version=(6, 12), autobind_reuse=True, ehash_lport_outside=False)

PROFILES: dict[str, Profile] = {p.name: p for p in (
    LINUX_6_18, LINUX_6_12, DEBIAN_6_1, MAINLINE_6_8, MAINLINE_6_5, MAINLINE_6_2)}
# profiles a running kernel's release may select (the bhash2 windows are for comparison only)
RELEASE_PROFILES = (LINUX_6_18, LINUX_6_12, DEBIAN_6_1)


def parse_release(release: str) -> tuple[int, int]:
    """'6.18.44-fc-v657' -> (6, 18)."""
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        raise ValueError(f"not a kernel release: {release!r}")
    return int(m.group(1)), int(m.group(2))


def profile_for_release(release: str) -> tuple[Profile, str]:
    """The profile for a running kernel, and a note when it is not an exact match."""
    version = parse_release(release)
    exact = [p for p in RELEASE_PROFILES if p.version == version]
    if exact:
        return exact[0], ""
    older = sorted((p for p in RELEASE_PROFILES if p.version <= version), key=lambda p: p.version)
    chosen = older[-1] if older else min(RELEASE_PROFILES, key=lambda p: p.version)
    return chosen, f"no profile for {release}; using the {chosen.name} profile"
