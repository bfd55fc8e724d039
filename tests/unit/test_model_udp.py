"""UDP bind rules of the model (model/udp.py), one behaviour each, without root; each names the
kernel function it pins. The corpus (tests/scenarios/udp*) checks the same against kernels."""

from __future__ import annotations

import random
import socket

import pytest

from harness.model_backend import host_of
from harness.parser import ScenarioError, parse_text
from model.addr import parse_sockaddr
from model.kernel import Kernel
from model.profiles import LINUX_5_10, LINUX_6_18, Profile
from model.sock import Proto
from model.sockopt import SockOpt
from model.sysctl import Sysctls
from model.udp import FreeRange

A = parse_sockaddr
REUSEADDR, REUSEPORT = SockOpt.SO_REUSEADDR, SockOpt.SO_REUSEPORT


def kernel(profile: Profile = LINUX_6_18, **sysctls) -> Kernel:
    s = Sysctls()
    for k, v in sysctls.items():
        s = s.with_setting(f"net.ipv4.{k}", v)
    return Kernel(profile, host_of(), s)


def udp(k: Kernel, name: str, *opts: SockOpt, family: int = socket.AF_INET, uid: int = 0) -> int:
    fd, _ = k.socket(name, family, uid, Proto.UDP)
    for o in opts:
        assert k.setsockopt(fd, o, 1).value == "0"
    return fd


def test_reuseaddr_shares_whatever_the_uid():
    """udp_lib_lport_inuse: both sk_reuse is no match at all (unlike SO_REUSEPORT, no uid test)."""
    k = kernel()
    a, b = udp(k, "a", REUSEADDR), udp(k, "b", REUSEADDR, uid=1000)
    assert k.bind(a, A("0.0.0.0:53")).value == "0"
    assert k.bind(b, A("10.0.0.1:53")).value == "EACCES"  # below ip_unprivileged_port_start
    assert k.bind(b, A("10.0.0.1:5300")).value == "0"
    assert k.bind(udp(k, "c", REUSEADDR, uid=1000), A("10.0.0.1:5300")).value == "0"


def test_reuseport_needs_the_same_uid():
    k = kernel()
    a, b, c = udp(k, "a", REUSEPORT), udp(k, "b", REUSEPORT), udp(k, "c", REUSEPORT, uid=1000)
    assert k.bind(a, A("0.0.0.0:5300")).value == "0"
    assert k.bind(b, A("0.0.0.0:5300")).value == "0"
    out = k.bind(c, A("0.0.0.0:5300"))
    assert out.value == "EADDRINUSE" and "c conflicts with b (" in out.reason


def test_the_first_match_in_the_chain_decides():
    """udp_lib_lport_inuse returns 0 at the first sharer: a conflict behind it is not seen."""
    for first, second, expect in (("a", "b", "0"), ("b", "a", "EADDRINUSE")):
        k = kernel()
        fds = {"a": udp(k, "a", REUSEADDR), "b": udp(k, "b", REUSEADDR, REUSEPORT)}
        addr = {"a": A("10.0.0.1:7000"), "b": A("0.0.0.0:7000")}
        assert k.bind(fds[first], addr[first]).value == "0"
        assert k.bind(fds[second], addr[second]).value == "0"
        assert k.bind(udp(k, "c", REUSEPORT), A("10.0.0.1:7000")).value == expect, first


def test_an_ipv6_reuseport_socket_goes_to_the_tail():
    """sk_add_node_rcu: AF_INET6 with SO_REUSEPORT is added at the tail, so it is not first."""
    k = kernel()
    y = udp(k, "y", REUSEADDR)
    x = udp(k, "x", REUSEADDR, REUSEPORT, family=socket.AF_INET6)
    assert k.bind(y, A("10.0.0.1:7000")).value == "0"
    assert k.bind(x, A("[::]:7000")).value == "0"
    assert [s.name for s in k.udp.chain(7000)] == ["y", "x"]
    assert k.bind(udp(k, "c", REUSEPORT), A("10.0.0.1:7000")).value == "EADDRINUSE"


def test_the_port_search_marks_a_port_behind_a_sharer():
    """udp_lib_get_port, snum 0: the bitmap walk does not stop at a sharer."""
    k = kernel(ip_local_port_range="7000 7001")
    assert k.bind(udp(k, "a", REUSEADDR), A("10.0.0.1:7000")).value == "0"
    assert k.bind(udp(k, "b", REUSEADDR, REUSEPORT), A("0.0.0.0:7000")).value == "0"
    out = k.bind(udp(k, "c", REUSEPORT), A("10.0.0.1:0"))
    assert out.value == "0" and tuple(out.candidates.ports) == (7001,) and not out.random


def test_the_search_takes_any_free_port_but_reserved_ones():
    k = kernel(ip_local_port_range="40000 40003", ip_local_reserved_ports="40001")
    assert k.bind(udp(k, "a"), A("0.0.0.0:40003")).value == "0"
    out = k.bind(udp(k, "b"), A("0.0.0.0:0"))
    assert out.value == "0" and tuple(out.candidates.ports) == (40000, 40002)
    assert k.bind(udp(k, "c"), A("0.0.0.0:0")).value == "0"
    assert k.bind(udp(k, "d"), A("0.0.0.0:0")).value == "EADDRINUSE"


def test_past_ten_sockets_the_hash2_walk_decides():
    """udp_lib_get_port: hslot->count > 10 walks the address's hash2 slot, then the wildcard's,
    each to its first match: a sharer first in the address's slot no longer hides a conflict in
    the wildcard's. A wildcard bind walks the chain (inet_use_hash2_on_bind), except on 5.10,
    which has no such test: its hash2 walk (the wildcard slot only) misses the specific sockets."""
    for profile, wildcard in ((LINUX_6_18, "EADDRINUSE"), (LINUX_5_10, "0")):
        k = kernel(profile)
        for i in range(11):
            assert k.bind(udp(k, f"s{i}", REUSEADDR), A("10.0.0.1:7000")).value == "0"
        assert k.bind(udp(k, "w"), A("0.0.0.0:7000")).value == wildcard, profile.name
        assert k.bind(udp(k, "v"), A("10.0.0.1:7000")).value == "EADDRINUSE"
    k = kernel()
    assert k.bind(udp(k, "w", REUSEADDR), A("0.0.0.0:7000")).value == "0"
    for n in (10, 11):  # sockets in the port's chain when v binds
        while len(k.udp.chain(7000)) < n:
            fd = udp(k, f"s{len(k.udp.chain(7000))}", REUSEADDR, REUSEPORT)
            assert k.bind(fd, A("10.0.0.1:7000")).value == "0"
        out = k.bind(udp(k, f"v{n}", REUSEPORT), A("10.0.0.1:7000"))
        assert out.value == ("0" if n == 10 else "EADDRINUSE"), (n, out.reason)
        if n == 10:
            assert k.close(len(k.socks) - 1).value == "0"  # v10 leaves: 10 in the chain again


def test_inuse_counts_bound_sockets_by_family_and_close_releases():
    k = kernel()
    a, b = udp(k, "a"), udp(k, "b", family=socket.AF_INET6)
    assert k.inuse(socket.AF_INET, Proto.UDP).value == "0"
    assert k.bind(a, A("0.0.0.0:6000")).value == "0"
    assert k.bind(b, A("[::]:6001")).value == "0"
    assert (k.inuse(socket.AF_INET, Proto.UDP).value, k.inuse(socket.AF_INET6, Proto.UDP).value) == ("1", "1")
    assert k.inuse(socket.AF_INET).value == "0"  # TCP's counter is another one
    assert k.close(a).value == "0" and k.inuse(socket.AF_INET, Proto.UDP).value == "0"
    assert k.listen(b, 8).value == "ENOTSUP"  # sock_no_listen: -EOPNOTSUPP


def test_udp_and_tcp_ports_are_separate_tables():
    k = kernel()
    assert k.bind(udp(k, "u"), A("0.0.0.0:6000")).value == "0"
    t, _ = k.socket("t", socket.AF_INET, 0)
    assert k.bind(t, A("0.0.0.0:6000")).value == "0"


def test_free_range_is_the_ports_but_its_holes():
    rng = random.Random(7)
    for _ in range(200):
        lo = rng.randrange(1, 60000)
        hi = lo + rng.randrange(0, 40)
        holes = sorted(rng.sample(range(lo, hi + 1), rng.randrange(0, hi - lo + 2)))
        free = FreeRange(lo, hi, holes)
        want = [p for p in range(lo, hi + 1) if p not in holes]
        assert len(free) == len(want) and list(free) == want
        assert [free[i] for i in range(len(want))] == want
        with pytest.raises(IndexError):
            free[len(want)]
        assert all((p in free) == (p in want) for p in range(lo - 1, hi + 2))
    assert FreeRange(40000, 40009, [40003, 40004]).runs() == "40000-40002, 40005-40009"


@pytest.mark.parametrize("text, says", [
    ("a = socket(AF_INET, SOCK_RAW)\n", "expected a socket type (SOCK_STREAM, SOCK_DGRAM)"),
    ("a = socket(AF_INET, SOCK_DGRAM)\nconnect(a, 10.0.0.1:53)\n", "connect() of a UDP socket goes to a virtual client"),
    ("a = socket(AF_INET6, SOCK_DGRAM)\nconnect(a, [2001:db8::1]:53)\n", "connect() of an AF_INET6 UDP socket is not modelled yet"),
    ("a = socket(AF_INET, SOCK_DGRAM)\nsetsockopt(a, SO_BINDTODEVICE, tun0)\nconnect(a, 198.18.0.1:53)\n",
     "connect() of a UDP socket bound to device tun0 is not modelled"),
    ("a = socket(AF_INET, SOCK_DGRAM)\nb = accept(a)\n", "accept() of a UDP socket"),
    ("a = socket(AF_INET, SOCK_DGRAM)\nqueue(a)\n", "queue() of a UDP socket"),
    ("m = sockarray(2)\na = socket(AF_INET, SOCK_DGRAM)\nsetsockopt(a, SO_ATTACH_REUSEPORT_EBPF, m[0])\n",
     "setsockopt(SO_ATTACH_REUSEPORT_EBPF) of a UDP socket"),
    ("a = socket(AF_INET, SOCK_DGRAM)\ndgram(198.18.0.1:1 > 10.0.0.1:53) = b\n", "expected the name of a UDP socket, ICMP or DROP"),
    ("a = socket(AF_INET6, SOCK_DGRAM)\nbind(a, [ff0e::1]:53)\n", "IPv6 multicast address is not modelled yet"),
    ("inuse(sctp)\n", "expected one of tcp, tcp6, udp, udp6"),
])
def test_what_udp_does_not_model_yet_is_a_parse_error(text, says):
    with pytest.raises(ScenarioError) as e:
        parse_text("u.scn", text)
    assert says in e.value.message, str(e.value)


def dgram(k: Kernel, src: str, dst: str, payload: int = 0) -> str:
    from harness.model_backend import syn_of
    from harness.parser import parse_text as parse

    a = parse("d.scn", f"dgram({src} > {dst}, payload={payload})\n").steps[0]
    return k.dgram(syn_of(a, 0)).value


def test_the_newest_of_equal_scores_receives():
    """udp4_lib_lookup2: a later socket must beat the best score, and the chain is newest first."""
    k = kernel()
    a, b = udp(k, "a", REUSEADDR), udp(k, "b", REUSEADDR)
    assert k.bind(a, A("0.0.0.0:5353")).value == "0" and k.bind(b, A("0.0.0.0:5353")).value == "0"
    assert dgram(k, "198.18.0.1:1000", "10.0.0.1:5353") == "b"
    assert k.close(b).value == "0" and dgram(k, "198.18.0.1:1001", "10.0.0.1:5353") == "a"
    assert k.close(a).value == "0" and dgram(k, "198.18.0.1:1002", "10.0.0.1:5353") == "ICMP"


def test_scores_by_family_device_and_exact_address():
    """compute_score: an exact address is looked up first; IPv4 prefers AF_INET (2) to AF_INET6
    (1) and a bound device (+4); IPv6 ignores AF_INET sockets."""
    k = kernel()
    v6, v4 = udp(k, "v6", REUSEADDR, family=socket.AF_INET6), udp(k, "v4", REUSEADDR)
    dev = udp(k, "dev", REUSEADDR)
    assert k.setsockopt(dev, SockOpt.SO_BINDTODEVICE, "tun1").value == "0"
    for fd, addr in ((v4, "0.0.0.0:5353"), (v6, "[::]:5353"), (dev, "0.0.0.0:5353")):
        assert k.bind(fd, A(addr)).value == "0"
    assert dgram(k, "198.18.0.1:1000", "10.0.0.1:5353") == "v4"
    assert dgram(k, "198.19.0.1:1000", "10.1.0.1:5353") == "dev"
    assert dgram(k, "[2001:db8::1]:1000", "[fd00::1]:5353") == "v6"
    spec = udp(k, "spec", REUSEADDR)
    assert k.bind(spec, A("10.0.0.1:5353")).value == "0"
    assert dgram(k, "198.18.0.1:1001", "10.0.0.1:5353") == "spec"


def test_a_group_first_in_the_chain_returns_its_pick_at_once():
    """udp4_lib_lookup2: the first SO_REUSEPORT socket to beat the score returns its group's
    pick; a better-scoring socket later in the chain (g0, bound to the ingress device after
    udp_lib_rehash took it out of the group) is never seen."""
    k = kernel()
    g = [udp(k, f"g{i}", REUSEPORT) for i in range(3)]
    for fd in g:
        assert k.bind(fd, A("0.0.0.0:6000")).value == "0"
    assert k.setsockopt(g[0], SockOpt.SO_ATTACH_REUSEPORT_CBPF, _cbpf("0")).value == "0"
    out = k.setsockopt(g[0], SockOpt.SO_BINDTODEVICE, "tun0")
    assert out.reason.endswith("g0 leaves its reuseport group, now [g2, g1]")
    assert [s.name for s in k.udp.chain(6000)] == ["g2", "g1", "g0"]
    assert dgram(k, "198.18.0.1:1000", "10.0.0.1:6000") == "g2"  # socks[0] of [g2, g1]
    assert k.setsockopt(g[0], SockOpt.SO_ATTACH_REUSEPORT_CBPF, _cbpf("0")).value == "EINVAL"


def _cbpf(text: str):
    from model.cbpf import parse_program

    return parse_program(text)


def test_a_connected_socket_takes_its_peers_datagrams():
    """__ip4_datagram_connect: the route's source for a wildcard socket (udp_lib_rehash to that
    address's slot); then udp4_lib_lookup4 (6.13+) or compute_score's +4 +4 (before) finds it
    for its peer's datagrams, and nobody else's."""
    from model.profiles import LINUX_6_12

    for profile, how in ((LINUX_6_18, "udp4_lib_lookup4"), (LINUX_6_12, "best score 10")):
        k = kernel(profile)
        a, b = udp(k, "a", REUSEADDR), udp(k, "b", REUSEADDR)
        assert k.bind(a, A("0.0.0.0:5353")).value == "0" and k.bind(b, A("0.0.0.0:5353")).value == "0"
        assert k.connect(a, A("198.18.0.9:4000")).value == "0"
        assert k.getsockname(a).value == "10.0.0.1:5353"
        d = k.dgram(_datagram("198.18.0.9:4000", "10.0.0.1:5353"))
        assert d.value == "a" and how in d.reason, (profile.name, d.reason)
        assert dgram(k, "198.18.0.9:4001", "10.0.0.1:5353") == "b"


def test_a_connected_member_leaves_its_group_with_hash4_only():
    """udp_lib_hash4 detaches the socket (6.13+); before, it stays, marked ESTABLISHED, and
    the group has connections (reuseport_has_conns_set) either way."""
    from model.profiles import LINUX_6_12

    for profile, members in ((LINUX_6_18, ["g0", "g2"]), (LINUX_6_12, ["g0", "g1", "g2"])):
        k = kernel(profile)
        g = [udp(k, f"g{i}", REUSEPORT) for i in range(3)]
        for fd in g:
            assert k.bind(fd, A("10.0.0.1:6000")).value == "0"
        assert k.connect(g[1], A("198.18.2.2:4000")).value == "0"
        group = k.socks[g[0]].reuseport_cb
        assert [s.name for s in group.socks] == members and group.has_conns, profile.name


def test_connect_autobinds_and_fails_with_eagain_when_no_port_is_free():
    k = kernel(ip_local_port_range="40000 40000")
    a, b = udp(k, "a"), udp(k, "b")
    assert k.connect(a, A("198.19.0.5:53")).value == "0" and k.getsockname(a).value == "10.1.0.1:40000"
    assert k.connect(b, A("198.19.0.5:53")).value == "EAGAIN"


def _datagram(src: str, dst: str):
    from harness.model_backend import syn_of
    from harness.parser import parse_text as parse

    return syn_of(parse("d.scn", f"dgram({src} > {dst})\n").steps[0], 0)
