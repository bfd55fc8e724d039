"""Kernel profiles: which algorithm each kernel version uses (docs/kernel-versions/).

A rule that changed between versions reads a field here, never `uname`. Each field names the
source that justifies it. 6.18 is the host's and checked against it; 6.12, 6.1 and 5.10 are built
from Debian's sources for the fields modelled so far (docs/kernel-versions/5.10.md lists the
5.10 differences), 5.15, 6.6 and 6.8 from those releases' stable history alone (not booted:
docs/kernel-versions/5.15-6.6-6.8.md), and the "-bhash2" profiles are mainline's bhash2
regression windows. A kernel without a profile of its own runs under the profile inferred for it
(harness/probe.py), and the report says so.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from model.bind import BindRules
from model.legacy39 import LINUX_3_9
from model.sysctl import KEYS


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
    # A connected UDP socket with a specific local address is hashed by its 4-tuple too and
    # leaves its reuseport group (udp4_hash4 -> udp_lib_hash4: reuseport_detach_sock); the
    # receive lookup tries that hash first (udp4_lib_lookup4). 78c91ae2c6de "ipv4/udp: Add
    # 4-tuple hash for connected socket", v6.13; not in 6.12.117.
    udp_hash4: bool = False
    # reuseport_select_sock_by_hash: with members on SO_INCOMING_CPU, scan socks[] from the hash
    # index for one on the receiving CPU (b261eda84ec1 "soreuseport: Fix socket selection for
    # SO_INCOMING_CPU.", v6.2-rc1; in Debian's 6.1, not in its 5.10.262). Before,
    # reuseport_select_sock takes socks[reciprocal_scale(hash, n)] and SO_INCOMING_CPU only adds
    # 1 to compute_score (5.10 net/core/sock_reuseport.c:304).
    reuseport_incoming_cpu: bool = True
    # net.ipv4.tcp_migrate_req moves a closed listener's connections to another member of its
    # group (inet_csk_listen_stop -> reuseport_migrate_sock, f9ac779f881c, v5.14). Debian's 5.10
    # has the sysctl (sysctl_net_ipv4.c:882) but nothing reads it: there it changes nothing.
    migrate_req: bool = True
    # reuseport_attach_prog: an unhashed socket needs SO_REUSEPORT (EINVAL), even if an earlier
    # attach gave it a group (6.12 net/core/sock_reuseport.c; from the 5.14 tcp_migrate_req
    # series, 333bb73f620e "tcp: Keep TCP_CLOSE sockets in the reuseport group."). 5.10 tests
    # "sk_unhashed(sk) && sk->sk_reuseport", then only that a group exists.
    attach_needs_reuseport: bool = True
    # setsockopt(IP_LOCAL_PORT_RANGE) exists (91d0b78c5177, v6.3; Debian's 6.1 has it,
    # ip_sockglue.c:1375); else do_ip_setsockopt's default: ENOPROTOOPT.
    local_port_range_opt: bool = True
    # __inet_hash_connect with IP_LOCAL_PORT_RANGE scans the socket's range in one pass with
    # step 1 (local_ports, 207184853dbd "tcp/dccp: change source port selection at connect()
    # time", v6.8-rc1); Debian's 6.1 narrows the range (inet_sk_get_local_port_range) but keeps
    # the two parity passes with step 2 (inet_hashtables.c:1020-1036 __inet_hash_connect).
    connect_range_step1: bool = True
    # fib_add_ifaddr adds an RTN_BROADCAST route for the network address of each primary
    # address with prefixlen < 31, as for prefix | ~mask, so bind() to e.g. 10.0.0.0 succeeds
    # (5.10 net/ipv4/fib_frontend.c:1149-1151 fib_add_ifaddr); Debian's 6.1 adds only
    # prefix | ~mask (fib_frontend.c:1161-1163), and bind() to the network address is
    # EADDRNOTAVAIL (inet_addr_type: RTN_UNICAST).
    network_address_broadcast: bool = False
    # The scenario sysctls (model/sysctl.py KEYS) this kernel has. A scenario that sets one it
    # lacks cannot run there: unsupported() names it, for the harness to report it skipped.
    sysctls: frozenset[str] = frozenset(KEYS)
    # How the bind conflict check is built: bhash2 and its 6.1-6.8 regressions (model/bind.py).
    bind: BindRules = field(default_factory=BindRules)

    def unsupported(self, sysctl_keys: Iterable[str]) -> str:
        """Why a scenario setting these sysctls cannot run on this kernel, or "" if it can."""
        missing = sorted(k for k in sysctl_keys if k not in self.sysctls)
        if not missing:
            return ""
        return f"sysctl {', '.join(missing)} does not exist in {self.name}"


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
                     connect_bind_reset=True, udp_hash4=True)

# The bhash2 regression windows (model/bind.py BindRules). These profiles differ from 6.18 in
# the bind rules and in the two fields dated above (ehash_lport_outside 6.15, connect_bind_reset
# 6.18); other version differences (docs/design.md, Kernel profiles) belong to the multi-kernel profiles, so they are
# exercised by unit tests on bind sequences, not against a booted kernel.
# Mainline v6.1 and v6.2: bhash2 as merged (28044fc1d495), before any fix.
MAINLINE_6_2 = Profile(
    name="6.2-bhash2", version=(6, 2), autobind_reuse=True, ehash_lport_outside=False,
    bind=BindRules(any_family_strict=True, v4_misses_v4mapped_any=True,
                   v4_misses_v4mapped_addr=True, v4mapped_specific_uses_bhash2=False,
                   v6only_skip_af_inet_only=True, v6_misses_v4mapped_any=True,
                   fastreuse_tests_owners=True))
# v6.3-v6.5: d9ba99342855 fixed the dual-stack wildcard; the v4-mapped ones remain, and the
# wildcard walk stops at its first match (visible only now that AF_INET matches [::]).
MAINLINE_6_5 = Profile(
    name="6.5-bhash2", version=(6, 5), autobind_reuse=True, ehash_lport_outside=False,
    bind=BindRules(v4_misses_v4mapped_any=True, v4_misses_v4mapped_addr=True,
                   addr_any_first_match_only=True, v4mapped_specific_uses_bhash2=False,
                   v6only_skip_af_inet_only=True, v6_misses_v4mapped_any=True,
                   fastreuse_tests_owners=True))
# v6.8.0-6.8.4: the v4-mapped fixes (6.6) and 5e07e672412b (v4-mapped specific addresses use
# bhash2, 6.8-rc1) are in; d91ef1e1b55f and ea111449501e (6.9-rc3, 6.8.5) are not.
MAINLINE_6_8 = Profile(
    name="6.8-bhash2", version=(6, 8), autobind_reuse=True, ehash_lport_outside=False,
    bind=BindRules(addr_any_first_match_only=True, v6only_skip_af_inet_only=True))
# Debian bookworm's 6.1.192 (linux-source-6.1): every fix is backported, but 6.1.168 took
# 5e07e672412b without 06a8c04f8994, so inet_bind2_bucket_match_addr_any (inet_hashtables.c:840)
# still returns ipv6_addr_any() for an AF_INET6 socket on an AF_INET6 bucket: a v4-mapped
# specific bind misses an AF_INET6 ::ffff:0.0.0.0 owner. Its bind buckets still have
# tb->owners, which inet_csk_update_fastreuse tests (inet_connection_sock.c:453:
# fastreuse_tests_owners). IP_LOCAL_PORT_RANGE is backported (ip_sockglue.c:1375), but
# __inet_hash_connect keeps step 2 and the parity passes for it (connect_range_step1).
DEBIAN_6_1 = Profile(
    name="6.1", version=(6, 1), autobind_reuse=True, ehash_lport_outside=False,
    connect_range_step1=False,
    bind=BindRules(v6_misses_v4mapped_any=True, fastreuse_tests_owners=True))
# Linux 6.12 (Debian trixie, 6.12.117): the bind rules of 6.18, without connect_bind_reset, and
# the older inet_ehashfn (the lport change is 9544d60a2605, v6.15-rc1).
LINUX_6_12 = Profile(name="6.12", version=(6, 12), autobind_reuse=True, ehash_lport_outside=False)
# Linux 5.10 (Debian bullseye, linux-source-5.10 5.10.262; docs/kernel-versions/5.10.md).
# No bhash2: inet_csk_get_port / inet_csk_bind_conflict walk tb->owners with
# inet_rcv_saddr_equal (inet_connection_sock.c:133), and inet_csk_update_fastreuse tests
# tb->owners before sk joins it (:309). reuseport_select_sock has no SO_INCOMING_CPU scan
# (sock_reuseport.c); tcp_migrate_req is a sysctl with no reader (sysctl_net_ipv4.c:882);
# no IP_LOCAL_PORT_RANGE. Debian's backports give it 6.12's listener lookup: lhash2 only,
# exact address then INADDR_ANY (inet_hashtables.c:336 __inet_lookup_listener) and the
# 5.15 compute_score (:233); ip_autobind_reuse is there (:258, 5.7).
LINUX_5_10 = Profile(
    name="5.10", version=(5, 10), autobind_reuse=True, ehash_lport_outside=False,
    reuseport_incoming_cpu=False, migrate_req=False, attach_needs_reuseport=False,
    local_port_range_opt=False, connect_range_step1=False, network_address_broadcast=True,
    bind=BindRules(bhash2=False, fastreuse_tests_owners=True))
# Linux 7.2 (Debian sid, linux-source-7.2 7.2.13): the rules of 6.18. The functions modelled
# differ only by ip_local_port_step_width (v7.1, inet_hashtables.c __inet_hash_connect), a sysctl
# whose default 0 keeps 6.18's scan; the model has no such sysctl, so no scenario sets it.
LINUX_7_2 = replace(LINUX_6_18, name="7.2", version=(7, 2))

# Linux 5.15 (Ubuntu 22.04's base; 5.15.y stable, checked to 5.15.202): from source, not booted
# (docs/kernel-versions/5.15-6.6-6.8.md). No bhash2 (28044fc1d495 is v6.1): inet_csk_get_port /
# inet_csk_bind_conflict walk tb->owners, and inet_csk_update_fastreuse tests tb->owners before
# sk joins it, as in 5.10. Unlike Debian's 5.10 it has the whole v5.14 tcp_migrate_req series
# (f9ac779f881c, 333bb73f620e: inet_csk_listen_stop -> reuseport_migrate_sock,
# sock_reuseport.c:reuseport_attach_prog), the SO_INCOMING_CPU group scan (b261eda84ec1, v6.2-rc1,
# backported in 5.15.86: sock_reuseport.c:reuseport_select_sock_by_hash) and no RTN_BROADCAST
# for the network address (94c821c74bf5, v5.14-rc1: fib_frontend.c:fib_add_ifaddr). No
# IP_LOCAL_PORT_RANGE (91d0b78c5177, v6.3; 6.1.32 took it as a dependency, 5.15.115 took the
# dependent fix without it), so do_ip_setsockopt answers ENOPROTOOPT and the socket-range scan
# is moot. Every scenario sysctl exists (tcp_migrate_req 5.14, ip_autobind_reuse 5.7).
LINUX_5_15 = Profile(
    name="5.15", version=(5, 15), autobind_reuse=True, ehash_lport_outside=False,
    local_port_range_opt=False, connect_range_step1=False,
    bind=BindRules(bhash2=False, fastreuse_tests_owners=True))
# Linux 6.6 (LTS; 6.6.y stable, checked to 6.6.134): from source, not booted. The mainline v6.6
# bind rules (d9ba99342855 v6.3-rc3, aa99e5f87bd5 and c48ef9c4aed3 v6.6-rc2) plus two stable
# batches: d91ef1e1b55f in 6.6.26 (inet_connection_sock.c:inet_bhash2_addr_any_conflict walks
# every wildcard bucket) and, in 6.6.131, 5e07e672412b + 58655bc0ad7c + ca79d80b0b9f +
# ea111449501e as Stable-dep-of e537dd15d0d4, without 06a8c04f8994: as in Debian's 6.1.168+,
# inet_hashtables.c:inet_bind2_bucket_match_addr_any still returns ipv6_addr_any() for an
# AF_INET6 socket on an AF_INET6 bucket, so a v4-mapped specific bind misses an AF_INET6
# ::ffff:0.0.0.0 owner (sequences F and D'). tb->owners still exists (8002d44fe84d is v6.8-rc1,
# not backported): inet_connection_sock.c:inet_csk_update_fastreuse tests it. IP_LOCAL_PORT_RANGE
# is there (v6.3) but inet_hashtables.c:__inet_hash_connect keeps step 2 and the parity passes
# (207184853dbd, v6.8-rc1, not backported). The same rules as DEBIAN_6_1, name and version aside.
# 6.6.0-6.6.25 also had addr_any_first_match_only; 6.6.26-6.6.130 had
# v4mapped_specific_uses_bhash2=False and v6only_skip_af_inet_only=True.
LINUX_6_6 = Profile(
    name="6.6", version=(6, 6), autobind_reuse=True, ehash_lport_outside=False,
    connect_range_step1=False,
    bind=BindRules(v6_misses_v4mapped_any=True, fastreuse_tests_owners=True))
# Linux 6.8 (Ubuntu 24.04's base; 6.8.y stable, last release 6.8.12): from source, not booted.
# Mainline v6.8 has the whole bhash2 rework (5e07e672412b, 06a8c04f8994, 5a22bba13d01,
# 822fb91fc724, 8002d44fe84d: v6.8-rc1) and 207184853dbd (__inet_hash_connect, one pass with step
# 1, v6.8-rc1); 6.8.5 took d91ef1e1b55f and ea111449501e (v6.9-rc3), so 6.8.5-6.8.12 has the
# bind rules of 6.12 and 6.18, where 6.8-bhash2 (6.8.0-6.8.4) keeps addr_any_first_match_only
# and v6only_skip_af_inet_only. The older inet_ehashfn (9544d60a2605 is v6.15) and no
# connect_bind_reset (d57f4b874946, v6.18, backported to 6.17.y only). The same rules as
# LINUX_6_12, name and version aside.
LINUX_6_8 = Profile(name="6.8", version=(6, 8), autobind_reuse=True, ehash_lport_outside=False)

PROFILES: dict[str, Profile] = {p.name: p for p in (
    LINUX_7_2, LINUX_6_18, LINUX_6_12, LINUX_6_8, LINUX_6_6, DEBIAN_6_1, LINUX_5_15, LINUX_5_10,
    MAINLINE_6_8, MAINLINE_6_5, MAINLINE_6_2)}
# profiles a running kernel's release may select (the bhash2 windows are for comparison only)
RELEASE_PROFILES = (LINUX_7_2, LINUX_6_18, LINUX_6_12, LINUX_6_8, LINUX_6_6, DEBIAN_6_1,
                    LINUX_5_15, LINUX_5_10)
# release profiles derived from source alone (docs/kernel-versions/5.15-6.6-6.8.md): no kernel
# of theirs booted here, so no scenario records their outcomes; `sockharness profiles --probe`
# is how a user on one confirms or corrects it
UNBOOTED: frozenset[str] = frozenset({LINUX_5_15.name, LINUX_6_6.name, LINUX_6_8.name})
# Linux 3.9, the first SO_REUSEPORT: a listener scored among all and a next_pseudo_random32
# reservoir (model/legacy39.py). No 3.9 kernel boots here, so it is a separate model checked by
# unit tests only (tests/unit/test_profile_3_9.py), not a profile the harness can run.
HISTORICAL = {LINUX_3_9.name: LINUX_3_9}


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


def with_fields(profile: Profile, settings: dict[str, str]) -> Profile:
    """`profile` with named fields set ("connect_bind_reset": "false", "bind.bhash2": "true"),
    for asking what one rule changes; its name lists the settings."""
    top: dict[str, object] = {}
    nested: dict[str, object] = {}
    for key, text in settings.items():
        owner, _, name = key.rpartition(".")
        holder = profile.bind if owner == "bind" else profile
        if owner not in ("", "bind") or name not in {f.name for f in dataclasses.fields(holder)} \
                or name in ("name", "version", "sysctls"):
            raise ValueError(f"no profile field {key!r}")
        current = getattr(holder, name)
        if isinstance(current, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{key} takes true or false, not {text!r}")
            value: object = text.lower() in ("true", "1")
        else:
            raise ValueError(f"{key} is not a true/false field")
        (nested if owner == "bind" else top)[name] = value
    if nested:
        top["bind"] = dataclasses.replace(profile.bind, **nested)
    label = ",".join(f"{k}={v}" for k, v in settings.items())
    return dataclasses.replace(profile, name=f"{profile.name}+{label}" if label else profile.name,
                               **top)
