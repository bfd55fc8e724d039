"""harness/calibrate.py: the numba search finds the secret model/jhash.py used, and only it."""

from __future__ import annotations

import random

import pytest

from harness.calibrate import (
    Observation,
    _first_window,
    calibrate,
    jit_inet_ehashfn,
    jit_reuseport_index,
    warm_up,
)
from model.jhash import inet_ehashfn, reciprocal_scale, reuseport_index

DADDR, DPORT, GROUP = "10.0.0.1", 8080, 256


def observe(secret: int, outside: bool, count: int = 6, seed: int = 11, n: int = GROUP) -> list[Observation]:
    """SYNs from varied saddr:sport, each landing where model/jhash.py says."""
    rng = random.Random(seed)
    obs = []
    for _ in range(count):
        saddr = f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        sport = rng.randrange(1024, 65536)
        index = reuseport_index(secret, saddr, sport, DADDR, DPORT, n, outside)
        obs.append(Observation(saddr, sport, DADDR, DPORT, n, index))
    return obs


@pytest.fixture(scope="module", autouse=True)
def compiled():
    warm_up()


SECRET = random.Random(20240601).getrandbits(32)


@pytest.mark.parametrize("outside", [False, True])
def test_full_range_search_finds_exactly_the_secret(outside):
    """All 2**32 candidates: six picks from a 256-group pin the secret down to one."""
    assert calibrate(observe(SECRET, outside), lport_outside=outside) == [SECRET]


@pytest.mark.parametrize("outside", [False, True])
def test_other_variant_observations_fit_no_secret(outside):
    """Picks made by the other inet_ehashfn variant: no secret fits (a hash formula divergence)."""
    assert calibrate(observe(SECRET, not outside), lport_outside=outside, lo=max(0, SECRET - 2**24), hi=min(2**32, SECRET + 2**24)) == []


def test_many_matches_overflow_a_chunk_and_all_come_back():
    """One pick from a 2-group fits half the secrets; every one is returned, as brute force says."""
    obs = observe(SECRET, True, count=1, n=2)
    lo, hi = 5_000_000, 5_000_000 + 40_000
    want = [s for s in range(lo, hi) if reuseport_index(s, obs[0].saddr, obs[0].sport, DADDR, DPORT, 2, True) == obs[0].index]
    assert calibrate(obs, lport_outside=True, lo=lo, hi=hi) == want


def test_search_range_edges_are_half_open():
    obs = observe(SECRET, False)
    assert calibrate(obs, lport_outside=False, lo=SECRET, hi=SECRET + 1) == [SECRET]
    assert calibrate(obs, lport_outside=False, lo=SECRET + 1, hi=SECRET + 1000) == []
    assert calibrate(obs, lport_outside=False, lo=SECRET - 1000, hi=SECRET) == []


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        calibrate([], lport_outside=False)
    with pytest.raises(ValueError):
        calibrate([Observation("192.0.2.1", 1, DADDR, DPORT, 4, 4)], lport_outside=False)
    with pytest.raises(ValueError):
        calibrate(observe(SECRET, False), lport_outside=False, lo=0, hi=2**32 + 1)


@pytest.mark.parametrize("outside", [False, True])
def test_numba_and_pure_python_agree(outside):
    """1,000 random (secret, addresses, ports, group size): same hash, same socks[] slot."""
    rng = random.Random(3 + outside)
    for _ in range(1000):
        secret = rng.getrandbits(32)
        laddr, faddr = (".".join(str(rng.randrange(256)) for _ in range(4)) for _ in range(2))
        lport, fport, n = rng.randrange(65536), rng.randrange(65536), rng.randrange(1, 65536)
        assert jit_inet_ehashfn(secret, laddr, lport, faddr, fport, outside) == inet_ehashfn(
            secret, laddr, lport, faddr, fport, outside
        )
        assert jit_reuseport_index(secret, faddr, fport, laddr, lport, n, outside) == reuseport_index(
            secret, faddr, fport, laddr, lport, n, outside
        )


def test_first_observation_window_is_reciprocal_scale():
    """The vectorised first check (c - off) mod 2**32 <= wm1 picks the same h as reciprocal_scale."""
    rng = random.Random(4)
    for _ in range(2000):
        n = rng.choice([1, 2, 3, 255, 256, 65535, rng.randrange(1, 65536)])
        index, add = rng.randrange(n), rng.getrandbits(32)
        off, wm1 = _first_window(add, n, index)
        for c in (rng.getrandbits(32), (off - 1) & 0xFFFFFFFF, off, (off + wm1) & 0xFFFFFFFF, (off + wm1 + 1) & 0xFFFFFFFF):
            assert (((c - off) & 0xFFFFFFFF) <= wm1) == (reciprocal_scale((c + add) & 0xFFFFFFFF, n) == index)
