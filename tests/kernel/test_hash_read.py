"""The eBPF hash reader (harness/hashprobe.py) reads the hash the kernel's reuseport selection
uses: for IPv4 it equals inet_ehashfn under the calibrated secret, in the wildcard chain
(laddr INADDR_ANY) and the exact-address one; for IPv6 it follows the profile's formula: from
6.15 (9544d60a2605) lport is added outside the jhash, so a tuple's hash on two ports differs
by the ports' difference, and before that it does not."""

from __future__ import annotations

import ipaddress

import pytest

from harness.inject import Flow
from harness.running import running_profile
from model.jhash import U32, inet_ehashfn

pytestmark = pytest.mark.kernel
ANY4 = ipaddress.IPv4Address("0.0.0.0")


def test_ipv4_hash_read_is_inet_ehashfn(pool):
    profile = running_profile()[0]
    secret = pool.hash_secret(profile.ehash_lport_outside).secret
    assert secret is not None, "calibration found no secret"
    flows = tuple(Flow(f"198.18.{i // 250}.{i % 250 + 1}", 20000 + i, "10.0.0.1", 8080) for i in range(300))
    got = pool.read_hashes(flows)
    assert len(got) == 2 * len(flows)
    for f in flows:
        src = ipaddress.IPv4Address(f.src)
        for laddr in (ANY4, ipaddress.IPv4Address(f.dst)):
            want = inet_ehashfn(secret, str(laddr), f.dport, f.src, f.sport, profile.ehash_lport_outside)
            assert got[(laddr, f.dport, src, f.sport)] == want, f


def test_ipv6_lport_outside_the_jhash_by_profile(pool):
    profile = running_profile()[0]
    flows = [Flow(f"2001:db8::{i + 1}", 30000 + i, "fd00::1", port) for i in range(100) for port in (8080, 9090)]
    got = pool.read_hashes(tuple(flows))
    assert len(got) == 2 * len(flows)
    additive = 0
    for laddr in ("::", "fd00::1"):
        for i in range(100):
            src, sport, la = ipaddress.IPv6Address(f"2001:db8::{i + 1}"), 30000 + i, ipaddress.IPv6Address(laddr)
            additive += (got[(la, 9090, src, sport)] - got[(la, 8080, src, sport)]) & U32 == 1010
    assert additive == (200 if profile.ehash_lport_outside else 0), additive
