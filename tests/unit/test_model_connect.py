"""The model's connect(), accept() and TIME_WAIT rules, each against the kernel function it
follows (model/connect.py, model/kernel/). The corpus checks the same rules against the kernel;
these pin the pieces one by one."""

from __future__ import annotations

import ipaddress
from socket import AF_INET, AF_INET6

import pytest

from harness.model_backend import host_of
from model.addr import RawSockAddr, parse_sockaddr
from model.kernel import Kernel
from model.profiles import LINUX_6_12, LINUX_6_18
from model.sockopt import SockOpt
from model.sysctl import Sysctls


def kernel(low: int = 40000, high: int = 40003, profile=LINUX_6_18, **sysctls) -> Kernel:
    s = Sysctls(ip_local_port_range=(low, high), **sysctls)
    return Kernel(profile, host_of(), s)


def sock(k: Kernel, name: str, family=AF_INET, **opts) -> int:
    fd, _ = k.socket(name, family, 0)
    for opt, value in opts.items():
        assert k.setsockopt(fd, SockOpt[opt], value).value == "0"
    return fd


def listener(k: Kernel, addr: str = "10.0.0.2:8080", family=AF_INET) -> int:
    fd = sock(k, f"l{addr}", family)
    assert k.bind(fd, parse_sockaddr(addr)).value == "0"
    assert k.listen(fd, 64).value == "0"
    return fd


def connect(k: Kernel, fd: int, addr: str = "10.0.0.2:8080", choice=None):
    return k.connect(fd, parse_sockaddr(addr), choice=choice)


def test_first_pass_is_lows_parity_then_the_other():
    """__inet_hash_connect: offset &= ~1, so even offsets from low first; bind() does odd."""
    k = kernel(40000, 40003)
    listener(k)
    out = connect(k, sock(k, "c0"), choice=40002)
    assert out.value == "0" and out.candidates.ports == (40000, 40002)
    assert connect(k, sock(k, "c1")).candidates.ports == (40000,)
    out = connect(k, sock(k, "c2"), choice=40003)
    assert out.candidates.ports == (40001, 40003) and "other parity" in out.candidates.rule
    connect(k, sock(k, "c3"))
    out = connect(k, sock(k, "c4"))
    assert out.value == "EADDRNOTAVAIL" and out.candidates is None


def test_another_destination_shares_the_port():
    """A port connect() made (fastreuse = fastreuseport = -1) is reused when the 4-tuple differs."""
    k = kernel(40000, 40000)
    listener(k)
    listener(k, "10.0.0.2:8081")
    assert connect(k, sock(k, "c0")).value == "0"
    assert connect(k, sock(k, "c1")).value == "EADDRNOTAVAIL"
    out = connect(k, sock(k, "c2"), "10.0.0.2:8081")
    assert out.value == "0" and out.candidates.ports == (40000,)


def test_a_port_bind_holds_is_skipped():
    k = kernel(40000, 40001)
    listener(k)
    h = sock(k, "h")
    assert k.bind(h, parse_sockaddr("10.0.0.1:40000")).value == "0"
    out = connect(k, sock(k, "c"))
    assert out.candidates.ports == (40001,)


def test_ip_local_port_range_is_one_pass_of_step_one():
    k = kernel(39990, 40020)
    listener(k)
    fd = sock(k, "c")
    assert k.setsockopt(fd, SockOpt.IP_LOCAL_PORT_RANGE, 40005 << 16 | 40003).value == "0"
    out = connect(k, fd)
    assert out.candidates.ports == (40003, 40004, 40005) and "IP_LOCAL_PORT_RANGE" in out.candidates.rule
    bad = sock(k, "d")
    assert k.setsockopt(bad, SockOpt.IP_LOCAL_PORT_RANGE, 40003 << 16 | 40005).value == "EINVAL"


def test_odd_range_offsets_may_find_nothing():
    """5 ports without the socket option: remaining = 4, offsets 0 and 2; with 40001-40004 taken,
    offset 0 finds 40000 and offset 2 finds nothing: a port or EADDRNOTAVAIL, at random."""
    k = kernel(40000, 40004)
    listener(k)
    for port in (40002, 40004, 40001, 40003):
        assert connect(k, sock(k, f"c{port}"), choice=port).value == "0"
    fd = sock(k, "last")
    out = connect(k, fd, choice=0)  # the kernel reports 0: its search found none
    assert out.value == "EADDRNOTAVAIL" and out.random
    assert out.candidates.ports == (40000,) and out.candidates.may_fail
    out = connect(k, sock(k, "again"), choice=40000)
    assert out.value == "0" and out.random


def test_source_comes_from_the_local_route():
    """fib_add_ifaddr: 10.0.0.2 is secondary to 10.0.0.1, whose address is the prefsrc; IPv6
    picks the destination itself."""
    k = kernel()
    listener(k)
    fd = sock(k, "c")
    connect(k, fd)
    assert k.getsockname(fd).value.startswith("10.0.0.1:")
    listener(k, "[fd00::2]:8080", AF_INET6)
    fd6 = sock(k, "c6", AF_INET6)
    connect(k, fd6, "[fd00::2]:8080")
    assert k.getsockname(fd6).value.startswith("[fd00::2]:")


def test_timewait_blocks_bind_without_reuseaddr_and_counts():
    k = kernel()
    a = listener(k)
    c = sock(k, "c")
    assert k.bind(c, parse_sockaddr("10.0.0.1:5000")).value == "0"
    connect(k, c)
    s, out = k.accept(a, "s")
    assert out.value == "c"
    assert k.inuse(AF_INET).value == "3"
    k.close(c)  # the client closes first: TIME_WAIT (FIN_WAIT2 substate), s is CLOSE_WAIT
    assert (k.tw().value, k.inuse(AF_INET).value) == ("1", "2")
    k.close(s)
    assert (k.tw().value, k.inuse(AF_INET).value) == ("1", "1")
    out = k.bind(sock(k, "n"), parse_sockaddr("10.0.0.1:5000"))
    assert out.value == "EADDRINUSE" and "c (10.0.0.1:5000 TIME_WAIT" in out.reason


@pytest.mark.parametrize("timestamps, expect, tw", [(1, "0", "0"), (0, "EADDRNOTAVAIL", "1")])
def test_a_bound_port_takes_its_timewait_over_with_a_timestamp(timestamps, expect, tw):
    """tcp_twsk_unique with twp == NULL: a recent timestamp is enough."""
    k = kernel(tcp_timestamps=timestamps)
    a = listener(k)
    c = sock(k, "c", SO_REUSEADDR=1)
    k.bind(c, parse_sockaddr("10.0.0.1:5000"))
    connect(k, c)
    s, _ = k.accept(a, "s")
    k.close(c)
    k.close(s)
    d = sock(k, "d", SO_REUSEADDR=1)
    assert k.bind(d, parse_sockaddr("10.0.0.1:5000")).value == "0"
    assert connect(k, d).value == expect
    assert k.tw().value == tw


def test_listener_close_resets_children_and_kills_a_client_timewait():
    k = kernel()
    a = listener(k)
    c = sock(k, "c")
    connect(k, c)
    k.close(c)  # TIME_WAIT in FIN_WAIT2 substate; the child stays queued, CLOSE_WAIT
    assert k.tw().value == "1"
    k.close(a)  # the child's RST kills the client's TIME_WAIT socket
    assert (k.tw().value, k.inuse(AF_INET).value) == ("0", "0")


def test_refused_connect_releases_the_autobound_port_and_resets_the_source():
    k = kernel()
    c = sock(k, "c")
    out = connect(k, c, choice=40002)
    assert out.value == "ECONNREFUSED"
    # tcp_disconnect: the source is reset; inet_sport still shows the port
    assert k.getsockname(c).value == "0.0.0.0:40002"
    assert connect(k, c).value == "ECONNREFUSED"  # SS_UNCONNECTED again: may connect again


def test_connect_errors():
    k = kernel()
    a = listener(k)
    assert connect(k, a).value == "EISCONN"
    v6only = sock(k, "v", AF_INET6, IPV6_V6ONLY=1)
    assert connect(k, v6only, "[::ffff:10.0.0.2]:8080").value == "ENETUNREACH"
    mapped = sock(k, "m", AF_INET6)
    k.bind(mapped, parse_sockaddr("[::ffff:10.0.0.1]:0"))
    assert connect(k, mapped, "[fd00::2]:8080").value == "EAFNOSUPPORT"
    free = sock(k, "f", IP_FREEBIND=1)
    k.bind(free, parse_sockaddr("192.0.2.1:5000"))
    assert connect(k, free).value == "ENETUNREACH"
    s, out = k.accept(sock(k, "x"), "s")
    assert s is None and out.value == "EINVAL"
    s, out = k.accept(a, "t")
    assert s is None and out.value == "EAGAIN"


def test_self_connect():
    """A socket bound to the address and port it connects to meets its own SYN."""
    k = kernel()
    c = sock(k, "c")
    k.bind(c, parse_sockaddr("10.0.0.1:5000"))
    assert connect(k, c, "10.0.0.1:5000").value == "0"
    k.close(c)
    assert k.tw().value == "1"


def test_connect_bind_reset_is_a_profile_difference():
    """6.18: once the bind()-ed owner leaves, a connect()-made port is connect()-only again."""
    results = {}
    for profile in (LINUX_6_18, LINUX_6_12):
        k = kernel(40000, 40000, profile=profile)
        listener(k)
        listener(k, "10.0.0.2:8081")
        c = sock(k, "c", SO_REUSEADDR=1)
        connect(k, c)
        h = sock(k, "h", SO_REUSEADDR=1)
        assert k.bind(h, parse_sockaddr("10.0.0.2:40000")).value == "0"
        assert connect(k, sock(k, "d"), "10.0.0.2:8081").value == "EADDRNOTAVAIL"
        k.close(h)
        results[profile.name] = connect(k, sock(k, "e"), "10.0.0.2:8081").value
    assert results == {"6.18": "0", "6.12": "EADDRNOTAVAIL"}


@pytest.mark.parametrize("family, addr, raw_family, length, expect", [
    (AF_INET, "10.0.0.1:80", None, 15, "EINVAL"),       # inet_bind_sk: < sizeof(sockaddr_in)
    (AF_INET, "10.0.0.1:80", AF_INET6, None, "EAFNOSUPPORT"),
    (AF_INET, "10.0.0.1:80", 0, None, "EAFNOSUPPORT"),  # AF_UNSPEC only with INADDR_ANY
    (AF_INET, "0.0.0.0:80", 0, None, "0"),
    (AF_INET, "10.0.0.1:80", None, 129, "EINVAL"),      # move_addr_to_kernel
    (AF_INET6, "[fd00::1]:80", None, 23, "EINVAL"),     # < SIN6_LEN_RFC2133
    (AF_INET6, "[fd00::1]:80", None, 24, "0"),
    (AF_INET6, "[fd00::1]:80", AF_INET, 8, "EINVAL"),   # the length is checked first
    (AF_INET6, "[fd00::1]:80", AF_INET, None, "EAFNOSUPPORT"),
])
def test_raw_sockaddr_checks_in_kernel_order(family, addr, raw_family, length, expect):
    k = kernel()
    fd = sock(k, "a", family)
    raw = RawSockAddr.of(parse_sockaddr(addr), raw_family, length)
    assert k.bind(fd, raw).value == expect


def test_raw_sockaddr_reads_the_bytes_as_the_kernel_does():
    """An IPv6 sockaddr read as sockaddr_in: sin_addr is sin6_flowinfo (0): 0.0.0.0."""
    raw = RawSockAddr.of(parse_sockaddr("[fd00::1]:8083"), AF_INET, None)
    assert raw.as_in().host == ipaddress.IPv4Address("0.0.0.0") and raw.as_in().port == 8083
    assert len(RawSockAddr.of(parse_sockaddr("10.0.0.1:1"), None, 200).data) == 128
