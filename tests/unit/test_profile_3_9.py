"""model/legacy39.py: Linux 3.9's scored listener walk, its reservoir, and its bind rule.

The known answers marked "gcc" came from a throwaway C program (kept out of the repo) that pasted
verbatim, from the Linux 3.9.6 tree (github.com/opennetworklinux/linux-3.9.6): __jhash_final and
jhash_3words (include/linux/jhash.h), next_pseudo_random32 (include/linux/random.h),
inet_ehashfn (include/net/inet_sock.h), ipv6_addr_jhash (include/net/ipv6.h), inet6_ehashfn
(include/net/inet6_hashtables.h), and the reservoir loop of __inet_lookup_listener; x86-64.
"""

from __future__ import annotations

import ipaddress

import pytest

from model import jhash as later
from model.legacy39 import (
    LINUX_3_9,
    BindBucket39,
    Family,
    Sock39,
    State39,
    Syn39,
    compute_score_39,
    inet6_ehashfn_39,
    inet_csk_bind_conflict_39,
    inet_csk_get_port_39,
    inet_ehashfn_39,
    ipv6_addr_jhash_39,
    jhash_3words_39,
    lookup_39,
    lookup_listener_39,
    next_pseudo_random32,
)

V4, V6 = ipaddress.IPv4Address, ipaddress.IPv6Address
SECRET = 0x12345678  # inet_ehash_secret + net_hash_mix(net)
IPV6_SECRET = 0x9ABCDEF0  # ipv6_hash_secret


def v4(name, addr="0.0.0.0", port=8080, **kw):
    return Sock39(name, Family.INET, V4(addr), port, **kw)


def v6(name, addr="::", port=8080, **kw):
    return Sock39(name, Family.INET6, V6(addr), port, **kw)


def syn4(saddr="10.0.0.2", sport=40000, daddr="10.0.0.1", dport=8080, dif=0):
    return Syn39(V4(saddr), sport, V4(daddr), dport, dif)


def syn6(saddr="2001:db8::2", sport=40000, daddr="2001:db8::1", dport=8080, dif=0):
    return Syn39(V6(saddr), sport, V6(daddr), dport, dif)


# ---- hashes against gcc -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "c", "initval", "expected"),
    [
        (0, 0, 0, 0, 0xC0B0A2C2),
        (1, 2, 3, 4, 0x13ED7F7B),
        (0xDEADBEEF, 0xCAFEBABE, 0x12345678, 0x9ABCDEF0, 0x86852488),
        (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xEB5FCDA1),
    ],
)
def test_jhash_3words_39_matches_gcc(a, b, c, initval, expected):
    """include/linux/jhash.h:jhash_3words of 3.9.6, answers from gcc."""
    assert jhash_3words_39(a, b, c, initval) == expected


def test_jhash_3words_of_3_9_is_not_the_later_one():
    """3.9 adds JHASH_INITVAL to a and b only; model/jhash.py's later form differs (0x1b68e557)."""
    assert jhash_3words_39(0, 0, 0, 0) != later.jhash_3words(0, 0, 0, 0)


def test_next_pseudo_random32_matches_gcc_and_wraps():
    """include/linux/random.h: seed * 1664525 + 1013904223 in u32."""
    assert next_pseudo_random32(0) == 1013904223 == 0x3C6EF35F
    assert next_pseudo_random32(1) == 0x3C88596C
    assert next_pseudo_random32(0xFFFFFFFF) == 0x3C558D52  # (2^32 - 1664525 + 1013904223) mod 2^32


def test_inet_ehashfn_39_matches_gcc():
    """inet_ehashfn(net, 10.0.0.1, 8080, 10.0.0.2, htons(40000)) with secret 0x12345678."""
    assert inet_ehashfn_39(SECRET, V4("10.0.0.1"), 8080, V4("10.0.0.2"), 40000) == 0xB728E6CB
    assert inet_ehashfn_39(SECRET, V4("10.0.0.1"), 8080, V4("10.0.0.2"), 40002) == 0x7513A5AD


def test_inet6_ehashfn_39_matches_gcc():
    """ipv6_addr_jhash(2001:db8::2) and inet6_ehashfn(2001:db8::1, 8080, 2001:db8::2, 40000)."""
    assert ipv6_addr_jhash_39(IPV6_SECRET, V6("2001:db8::2")) == 0xEAA17D5D
    assert inet6_ehashfn_39(SECRET, IPV6_SECRET, V6("2001:db8::1"), 8080,
                            V6("2001:db8::2"), 40000) == 0xF44AC2BB


# ---- compute_score ------------------------------------------------------------------------


def test_ipv4_specific_address_beats_wildcard():
    """net/ipv4/inet_hashtables.c:compute_score: 2 for AF_INET, +4 for a matching address."""
    assert compute_score_39(v4("any"), syn4()) == 2
    assert compute_score_39(v4("exact", "10.0.0.1"), syn4()) == 6
    assert compute_score_39(v4("other", "10.0.0.9"), syn4()) == -1


def test_ipv4_bound_device_beats_unbound():
    """+4 for sk_bound_dev_if == dif; a socket bound to another device does not match."""
    assert compute_score_39(v4("dev", bound_dev_if=3), syn4(dif=3)) == 6
    assert compute_score_39(v4("dev+addr", "10.0.0.1", bound_dev_if=3), syn4(dif=3)) == 10
    assert compute_score_39(v4("otherdev", bound_dev_if=4), syn4(dif=3)) == -1
    assert compute_score_39(v4("any"), syn4(dif=3)) == 2


def test_ipv4_family_score():
    """AF_INET scores 2, a dual-stack AF_INET6 socket 1; v6only and specific v6 never match."""
    assert compute_score_39(v6("dual"), syn4()) == 1
    assert compute_score_39(v6("mapped", "::ffff:10.0.0.1"), syn4()) == 5
    assert compute_score_39(v6("v6only", v6only=True), syn4()) == -1
    assert compute_score_39(v6("specific6", "2001:db8::1"), syn4()) == -1  # inet6_bind: ipv6only
    assert compute_score_39(v4("port", port=8081), syn4()) == -1


def test_ipv6_scores_one_plus_one_plus_one():
    """net/ipv6/inet6_hashtables.c:compute_score: 1, +1 address, +1 device; AF_INET never."""
    assert compute_score_39(v6("any"), syn6()) == 1
    assert compute_score_39(v6("exact", "2001:db8::1"), syn6()) == 2
    assert compute_score_39(v6("dev", bound_dev_if=3), syn6(dif=3)) == 2  # ties with "exact"
    assert compute_score_39(v6("both", "2001:db8::1", bound_dev_if=3), syn6(dif=3)) == 3
    assert compute_score_39(v4("v4"), syn6()) == -1


# ---- the walk and the reservoir -----------------------------------------------------------


@pytest.mark.parametrize("order", ["wildcard-first", "exact-first"])
def test_specific_address_wins_whatever_the_order(order):
    """The whole bucket is scored, so a reuseport wildcard group loses to an exact address."""
    group = [v4(f"w{i}", reuseport=True) for i in range(3)]
    exact = v4("exact", "10.0.0.1")
    listeners = group + [exact] if order == "wildcard-first" else [exact] + group
    for sport in range(40000, 40050):
        assert lookup_listener_39(listeners, syn4(sport=sport), SECRET) is exact


def test_non_reuseport_best_wins_alone():
    """A best socket without SO_REUSEPORT leaves reuseport = 0: later ties are not counted."""
    alone = v4("alone", bound_dev_if=3)  # score 6, met first: listened last
    tied = [v4(f"rp{i}", "10.0.0.1", reuseport=True) for i in range(3)]  # score 6 each
    for sport in range(40000, 40200):
        got = lookup_39(tied + [alone], syn4(sport=sport, dif=3), SECRET)
        assert (got.sk, got.matches, got.phash) == (alone, 1, None)


def test_unique_best_without_reuseport_beats_a_lower_group():
    """One exact-address listener without reuseport; a reuseport wildcard group scores lower."""
    exact = v4("exact", "10.0.0.1")
    group = [v4(f"w{i}", reuseport=True) for i in range(4)]
    assert lookup_listener_39([exact] + group, syn4(), SECRET) is exact


def test_a_tie_after_a_reuseport_best_joins_without_its_own_flag():
    """3.9 reads only the best's sk_reuseport: a later tie without it is in the reservoir too."""
    plain = v4("plain", bound_dev_if=3)  # score 6, listened first: met last
    rp = v4("rp", "10.0.0.1", reuseport=True)  # score 6, met first
    picks = {lookup_listener_39([plain, rp], syn4(sport=s, dif=3), SECRET).name
             for s in range(40000, 40100)}
    assert picks == {"plain", "rp"}


def test_reservoir_restarts_at_a_higher_score():
    """A better socket later in the walk takes over, whatever the reservoir held."""
    exact = v4("exact", "10.0.0.1", reuseport=True)
    group = [v4(f"w{i}", reuseport=True) for i in range(4)]
    # exact listened first, so the walk meets the wildcard group before it
    got = lookup_39([exact] + group, syn4(), SECRET)
    assert (got.sk, got.hiscore, got.matches) == (exact, 6, 1)


def test_hand_computed_reservoir_example():
    """Four wildcard reuseport listeners L0..L3 (listen order); the walk meets L3, L2, L1, L0.

    SYN 10.0.0.2:40002 -> 10.0.0.1:8080, secret 0x12345678:
      phash = inet_ehashfn = 0x7513a5ad = 1964221869 (gcc); result = L3, matches = 1
      L2: matches 2, 1964221869 * 2 = 3928443738 < 2^32 -> result = L2
          phash = 1964221869 * 1664525 + 1013904223 = 3269497420401448 = 0xb9d97_30564b28
                -> 0x30564b28 = 810961704
      L1: matches 3, 810961704 * 3 = 2432885112 < 2^32 -> result = L1
          phash = 810961704 * 1664525 + 1013904223 = 1349867044254823 = 0x4cbb2_69aab467
                -> 0x69aab467 = 1772794983
      L0: matches 4, 1772794983 * 4 = 7091179932 >= 2^32 -> result stays L1
    gcc's transcription of the loop agrees: index 2 in walk order, which is L1.
    """
    listeners = [v4(f"L{i}", reuseport=True) for i in range(4)]
    got = lookup_39(listeners, syn4(sport=40002), SECRET)
    assert (got.sk.name, got.matches, got.phash) == ("L1", 4, 0x7513A5AD)
    assert next_pseudo_random32(0x7513A5AD) == 0x30564B28
    assert next_pseudo_random32(0x30564B28) == 0x69AAB467


@pytest.mark.parametrize(
    ("sport", "walk_index"),
    [(40000, 0), (40001, 0), (40002, 2), (40003, 1), (40004, 3), (40005, 1), (40006, 0), (40007, 0)],
)
def test_reservoir_matches_gcc_transcription(sport, walk_index):
    """The same four listeners, eight source ports; walk_index from the C loop (walk = L3..L0)."""
    listeners = [v4(f"L{i}", reuseport=True) for i in range(4)]
    assert lookup_listener_39(listeners, syn4(sport=sport), SECRET) is listeners[3 - walk_index]


def test_deterministic_for_a_given_hash():
    """No randomness but the inputs: the same SYN and secret give the same socket every time."""
    listeners = [v4(f"L{i}", reuseport=True) for i in range(5)]
    for sport in range(41000, 41050):
        first = lookup_39(listeners, syn4(sport=sport), SECRET)
        assert all(lookup_39(listeners, syn4(sport=sport), SECRET) == first for _ in range(3))
        assert first.phash == inet_ehashfn_39(SECRET, V4("10.0.0.1"), 8080, V4("10.0.0.2"), sport)


@pytest.mark.parametrize("n", [2, 3, 4, 8])
def test_reservoir_spreads_distinct_tuples_about_evenly(n):
    """Each of n tied reuseport listeners gets about 1/n of 20000 distinct 4-tuples.

    The bound is 5 binomial standard deviations, so this can fail if the reservoir is biased.
    """
    listeners = [v4(f"L{i}", reuseport=True) for i in range(n)]
    counts = dict.fromkeys((sk.name for sk in listeners), 0)
    total = 0
    for host in range(2, 202):
        for sport in range(50000, 50100):
            counts[lookup_listener_39(listeners, syn4(saddr=f"10.1.{host // 256}.{host % 256}",
                                                      sport=sport), SECRET).name] += 1
            total += 1
    p = 1 / n
    bound = 5 * (total * p * (1 - p)) ** 0.5
    for name, count in counts.items():
        assert abs(count - total * p) < bound, (name, count, total * p, bound)


def test_ipv6_reservoir_needs_ipv6_hash_secret():
    """inet6_ehashfn mixes in ipv6_hash_secret; without it an IPv6 tie cannot be decided."""
    listeners = [v6(f"L{i}", reuseport=True) for i in range(3)]
    with pytest.raises(ValueError, match="ipv6_hash_secret"):
        lookup_39(listeners, syn6(), SECRET)
    got = lookup_39(listeners, syn6(), SECRET, IPV6_SECRET)
    assert got.phash == 0xF44AC2BB and got.matches == 3 and got.sk in listeners


def test_no_listener_and_non_listening_input():
    """No match gives None; a socket not in TCP_LISTEN is not in listening_hash."""
    assert lookup_listener_39([v4("other", port=9090)], syn4(), SECRET) is None
    with pytest.raises(ValueError, match="TCP_LISTEN"):
        lookup_39([v4("closed", state=State39.CLOSE)], syn4(), SECRET)


def test_linux_3_9_description():
    """The constants a profile registry would read."""
    assert LINUX_3_9.version == (3, 9)
    assert LINUX_3_9.scores_every_listener and LINUX_3_9.reservoir_next_pseudo_random32
    assert not LINUX_3_9.ehash_lport_outside and not LINUX_3_9.autobind_reuse


# ---- bind ---------------------------------------------------------------------------------


def closed(name, addr="0.0.0.0", **kw):
    return v4(name, addr, state=State39.CLOSE, **kw)


def test_reuseport_same_uid_shares_the_port_by_the_fast_path():
    """inet_csk_get_port: the first reuseport binder sets fastreuseport and fastuid."""
    tb = BindBucket39(8080)
    a, b = closed("a", reuseport=True, uid=1000), closed("b", reuseport=True, uid=1000)
    assert inet_csk_get_port_39(a, tb)
    assert (tb.fastreuseport, tb.fastuid) == (1, 1000)
    assert inet_csk_bind_conflict_39(b, tb, relax=True) is None
    assert inet_csk_get_port_39(b, tb)
    # listen() runs get_port again in TCP_LISTEN; both still fit
    for sk in (a, b):
        assert inet_csk_get_port_39(Sock39(sk.name, sk.family, sk.addr, 8080, reuseport=True,
                                           uid=1000), tb)
    assert [o.state for o in tb.owners] == [State39.LISTEN, State39.LISTEN]


def test_reuseport_other_uid_conflicts():
    """uid_eq(uid, sock_i_uid(sk2)) fails: a reuseport socket of another user is refused."""
    tb = BindBucket39(8080)
    assert inet_csk_get_port_39(closed("a", reuseport=True, uid=1000), tb)
    other = closed("b", reuseport=True, uid=1001)
    assert inet_csk_bind_conflict_39(other, tb, relax=True).name == "a"
    assert not inet_csk_get_port_39(other, tb)


def test_reuseport_needs_both_sides():
    """One side without SO_REUSEPORT conflicts on an overlapping address; a newcomer clears
    fastreuseport only when it is admitted."""
    tb = BindBucket39(8080)
    assert inet_csk_get_port_39(closed("a", reuseport=True), tb)
    assert not inet_csk_get_port_39(closed("b"), tb)
    assert tb.fastreuseport == 1
    assert inet_csk_get_port_39(closed("c", "10.0.0.9"), tb) is False  # wildcard owner overlaps
    tb2 = BindBucket39(8080)
    assert inet_csk_get_port_39(closed("x", "10.0.0.1", reuseport=True), tb2)
    assert inet_csk_get_port_39(closed("y", "10.0.0.2"), tb2)  # distinct addresses
    assert tb2.fastreuseport == 0


def test_time_wait_owner_skips_the_uid_check():
    """(sk2->sk_state != TCP_TIME_WAIT && !uid_eq(...)): a TIME_WAIT reuseport owner of another
    user does not conflict."""
    tb = BindBucket39(8080, owners=[v4("tw", reuseport=True, uid=1000, state=State39.TIME_WAIT)])
    assert inet_csk_bind_conflict_39(closed("b", reuseport=True, uid=1001), tb, relax=True) is None


def test_devices_and_v6only_owners_do_not_conflict():
    """Distinct bound devices never conflict; an ipv6only owner is skipped (inet_v6_ipv6only)."""
    tb = BindBucket39(8080, owners=[v4("eth1", bound_dev_if=1), v6("only6", v6only=True)])
    assert inet_csk_bind_conflict_39(closed("eth2", bound_dev_if=2), tb, relax=True) is None
    assert inet_csk_bind_conflict_39(closed("any"), tb, relax=True).name == "eth1"
