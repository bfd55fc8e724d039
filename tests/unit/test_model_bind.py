"""Model rules, one behaviour each, without root. Each names the kernel function it pins."""

from __future__ import annotations

import socket

import pytest

from harness.model_backend import host_of
from model.addr import parse_sockaddr
from model.bind import FASTREUSEPORT_STRICT
from model.kernel import Kernel
from model.profiles import LINUX_6_18
from model.sockopt import SockOpt
from model.sysctl import Sysctls


def kernel(**sysctls) -> Kernel:
    s = Sysctls()
    for k, v in sysctls.items():
        s = s.with_setting(f"net.ipv4.{k}", v)
    return Kernel(LINUX_6_18, host_of(), s)


def sock(k: Kernel, name: str, *opts: SockOpt, uid: int = 0) -> int:
    fd, _ = k.socket(name, socket.AF_INET, uid)
    for o in opts:
        assert k.setsockopt(fd, o, 1).value == "0"
    return fd


A = parse_sockaddr


def test_reuseaddr_pair_binds_then_only_one_listens():
    """inet_bind_conflict: SO_REUSEADDR shares with a non-listening owner, never a listener."""
    k = kernel()
    a, b = (sock(k, n, SockOpt.SO_REUSEADDR) for n in "ab")
    assert k.bind(a, A("10.0.0.1:80")).value == "0"
    assert k.bind(b, A("10.0.0.1:80")).value == "0"
    assert k.listen(a, 5).value == "0"
    out = k.listen(b, 5)
    assert out.value == "EADDRINUSE"
    assert "inet_csk_listen_start" in out.reason and "a (10.0.0.1:80 LISTEN" in out.reason
    assert k.inuse().value == "1"


def test_reuseport_needs_same_uid_and_names_both():
    """inet_bind_conflict: SO_REUSEPORT sharing requires uid_eq."""
    k = kernel()
    a = sock(k, "a", SockOpt.SO_REUSEPORT)
    b = sock(k, "b", SockOpt.SO_REUSEPORT, uid=1000)
    assert k.bind(a, A("0.0.0.0:8080")).value == "0"
    out = k.bind(b, A("10.0.0.1:8080"))
    assert out.value == "EADDRINUSE"
    assert out.reason.startswith("inet_bhash2_addr_any_conflict") and "uid 1000 != uid 0" in out.reason


def test_fastreuseport_starts_strict_because_bhash2_is_linked_first():
    """inet_csk_update_fastreuse sees a non-empty tb->bhash2 on the first bind."""
    k = kernel()
    a = sock(k, "a", SockOpt.SO_REUSEPORT)
    assert k.bind(a, A("10.0.0.1:80")).value == "0"
    tb = k.binds.bucket(80, 0)
    assert tb.fastreuseport == FASTREUSEPORT_STRICT and tb.fastreuse == 0 and tb.fast_rcv_saddr != 0


def test_specific_then_wildcard_conflicts_and_close_frees_the_port():
    """inet_csk_bind_conflict walks every owner for a wildcard; tcp_close -> inet_put_port."""
    k = kernel()
    a, b = sock(k, "a"), sock(k, "b")
    assert k.bind(a, A("10.0.0.1:80")).value == "0"
    assert k.bind(b, A("0.0.0.0:80")).value == "EADDRINUSE"
    assert k.close(a).value == "0"
    assert not k.binds.bhash and not k.binds.bhash2
    assert k.bind(b, A("0.0.0.0:80")).value == "0"


def test_bind_checks_run_in_kernel_order():
    """__inet_bind: address (EADDRNOTAVAIL), then privilege (EACCES), then double bind (EINVAL)."""
    k = kernel()
    a = sock(k, "a", uid=1000)
    assert k.bind(a, A("10.9.9.9:80")).value == "EADDRNOTAVAIL"
    assert k.bind(a, A("10.0.0.1:80")).value == "EACCES"
    assert k.bind(a, A("10.0.0.1:8080")).value == "0"
    assert k.bind(a, A("10.9.9.9:80")).value == "EADDRNOTAVAIL"
    assert k.bind(a, A("10.0.0.1:8081")).value == "EINVAL"


@pytest.mark.parametrize("addr, ok", [("127.8.9.10", True), ("10.0.0.255", True), ("224.0.0.1", True),
                                      ("0.0.0.1", False), ("10.0.0.3", False), ("255.255.255.255", True)])
def test_inet_addr_type_of_the_standard_topology(addr, ok):
    k = kernel()
    assert (k.bind(sock(k, "a"), A(f"{addr}:80")).value == "0") is ok


def test_autobind_prefers_odd_ports_of_the_lower_half_for_reuseaddr():
    """inet_csk_find_open_port: offset |= 1, attempt_half = 1 for SK_CAN_REUSE."""
    k = kernel(ip_local_port_range="40000 40011")
    a = sock(k, "a", SockOpt.SO_REUSEADDR)
    out = k.bind(a, A("0.0.0.0:0"))
    assert out.candidates is not None and set(out.candidates.ports) == {40001, 40003, 40005}
    b = sock(k, "b")
    out = k.listen(b, 5)
    assert set(out.candidates.ports) == {40001, 40003, 40005, 40007, 40009, 40011} - {k.socks[a].num}


def test_autobind_falls_to_other_parity_then_fails_when_exhausted():
    k = kernel(ip_local_port_range="40000 40001")
    a, b, c = sock(k, "a"), sock(k, "b"), sock(k, "c")
    assert k.bind(a, A("0.0.0.0:40001")).value == "0"
    assert k.listen(b, 5, choice=40000).value == "0" and k.socks[b].num == 40000
    out = k.listen(c, 5)
    assert out.value == "EADDRINUSE" and "no free port" in out.reason


def test_kernel_choice_outside_the_candidates_is_not_adopted():
    """The model only follows the real kernel's pick when the kernel could have made it."""
    k = kernel(ip_local_port_range="40000 40003")
    a = sock(k, "a")
    out = k.bind(a, A("0.0.0.0:0"), choice=40000)  # even: not reachable while odd ports are free
    assert 40000 not in out.candidates and k.socks[a].num in (40001, 40003)


def test_reuseport_group_keeps_listen_order_and_close_moves_the_last():
    """reuseport_add_sock appends; __reuseport_detach_sock moves the last into the gap."""
    k = kernel()
    fds = [sock(k, n, SockOpt.SO_REUSEPORT) for n in "abcd"]
    for fd in fds:
        assert k.bind(fd, A("0.0.0.0:80")).value == "0"
        assert k.listen(fd, 5).value == "0"
    group = k.socks[fds[0]].reuseport_cb
    assert [s.name for s in group.socks] == list("abcd")
    k.close(fds[1])
    assert [s.name for s in group.socks] == list("adc")
    assert k.inuse().value == "3"


def test_ebadf_after_close():
    k = kernel()
    a = sock(k, "a")
    assert k.close(a).value == "0"
    for out in (k.close(a), k.bind(a, A("10.0.0.1:1")), k.listen(a, 1), k.getsockname(a)):
        assert out.value == "EBADF"
