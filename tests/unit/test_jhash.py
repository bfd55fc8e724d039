"""model/jhash.py against known answers computed by gcc from the kernel's own jhash.h text.

The constants below came from a throwaway C program (kept out of the repo) that pasted
include/linux/jhash.h (__jhash_final, __jhash_nwords, jhash_3words), include/net/inet_sock.h
(__inet_ehashfn) and include/linux/math.h (reciprocal_scale) verbatim from Linux 6.12 and 7.2;
both trees printed the same values.
"""

from __future__ import annotations

import random

import pytest

from model.jhash import (
    inet_ehashfn,
    ipv4_word,
    jhash_3words,
    jhash_final,
    port_word,
    reciprocal_scale,
    reuseport_index,
    rol32,
)


def test_rol32_wraps_the_top_bit():
    """include/linux/bitops.h:rol32."""
    assert rol32(0x80000001, 1) == 0x00000003
    assert rol32(0x12345678, 0) == 0x12345678


@pytest.mark.parametrize(
    ("a", "b", "c", "initval", "expected"),
    [
        (0, 0, 0, 0, 0x1B68E557),
        (1, 2, 3, 4, 0x8103143F),
        (0xDEADBEEF, 0xCAFEBABE, 0x12345678, 0x9ABCDEF0, 0xB9301382),
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xC343AF0B),
    ],
)
def test_jhash_3words_matches_gcc(a, b, c, initval, expected):
    """include/linux/jhash.h:jhash_3words, answers from gcc."""
    assert jhash_3words(a, b, c, initval) == expected


def test_jhash_final_is_what_jhash_3words_calls():
    """jhash_3words(0,0,0,0) = __jhash_final of three copies of 0xdeadbeef + 12."""
    iv = 0xDEADBEEF + 12
    assert jhash_final(iv, iv, iv) == 0x1B68E557


def test_network_order_words_as_x86_reads_them():
    """inet_addr("10.0.0.1") and htons(40000) as printed by gcc on x86."""
    assert ipv4_word("10.0.0.1") == 0x0100000A
    assert ipv4_word("192.168.1.77") == 0x4D01A8C0
    assert port_word(40000) == 0x409C


@pytest.mark.parametrize(
    ("secret", "lport", "fport", "outside", "expected"),
    [
        (0x1234ABCD, 8080, 40000, False, 0x1823BE88),
        (0x00000000, 65535, 1, False, 0x760EC7B1),
        (0x1234ABCD, 8080, 40000, True, 0x9B2398B7),
        (0x00000000, 65535, 1, True, 0x2B4FA52D),
        (81532, 65535, 40000, True, 0x0000D359),  # lport + jhash wraps past 2**32
    ],
)
def test_inet_ehashfn_matches_gcc(secret, lport, fport, outside, expected):
    """net/ipv4/inet_hashtables.c:inet_ehashfn, laddr 10.0.0.1, faddr 192.168.1.77."""
    assert inet_ehashfn(secret, "10.0.0.1", lport, "192.168.1.77", fport, outside) == expected


def test_reuseport_index_matches_gcc():
    """inet_lookup_reuseport hashes (daddr, dport, saddr, sport); gcc gave slots 24 and 155 of 256."""
    assert reuseport_index(0x1234ABCD, "192.168.1.77", 40000, "10.0.0.1", 8080, 256, False) == 24
    assert reuseport_index(0x1234ABCD, "192.168.1.77", 40000, "10.0.0.1", 8080, 256, True) == 155


def test_the_two_variants_differ():
    """6.15 moved lport out of jhash (net/ipv4/inet_hashtables.c:inet_ehashfn): most picks change."""
    rng = random.Random(1)
    picks = []
    for _ in range(200):
        secret, sport = rng.getrandbits(32), rng.randrange(1, 65536)
        saddr = f"192.168.{rng.randrange(256)}.{rng.randrange(256)}"
        picks.append(
            reuseport_index(secret, saddr, sport, "10.0.0.1", 8080, 256, False)
            != reuseport_index(secret, saddr, sport, "10.0.0.1", 8080, 256, True)
        )
    assert sum(picks) > 190


def test_reciprocal_scale_bounds():
    """include/linux/math.h:reciprocal_scale maps [0, 2**32) onto [0, n), endpoints included."""
    assert reciprocal_scale(0, 256) == 0
    assert reciprocal_scale(0xFFFFFFFF, 256) == 255
    assert reciprocal_scale(0x80000000, 3) == 1
    assert reciprocal_scale(0xFFFFFFFF, 1) == 0
    rng = random.Random(2)
    for _ in range(1000):
        n = rng.randrange(1, 65536)
        assert 0 <= reciprocal_scale(rng.getrandbits(32), n) < n
