"""tcp_conn_request's decisions and the ACK's, rule by rule (model/queues.py, model/kernel/)."""

from __future__ import annotations

import ipaddress
from socket import AF_INET

import pytest

from harness.model_backend import host_of
from model.addr import parse_sockaddr
from model.kernel import Kernel
from model.lookup import Syn
from model.profiles import LINUX_6_18
from model.queues import SynFate, tcp_conn_request
from model.sock import Sock
from model.sockopt import SockOpt
from model.sysctl import Sysctls

SERVER = ipaddress.IPv4Address("10.0.0.1")


def listener(backlog: int, **sysctls) -> tuple[Kernel, int]:
    k = Kernel(LINUX_6_18, host_of(), Sysctls(**sysctls))
    fd, _ = k.socket("a", AF_INET, 0)
    k.bind(fd, parse_sockaddr("10.0.0.1:8080"))
    k.listen(fd, backlog)
    return k, fd


def syn(i: int) -> Syn:
    return Syn(ipaddress.IPv4Address("198.18.0.1"), 40000 + i, SERVER, 8080, b"", 2, 0)


@pytest.mark.parametrize("cookies, expect", [
    (0, ["SYNACK", "SYNACK", "DROP", "DROP"]),     # qlen > backlog: dropped
    (1, ["SYNACK", "SYNACK", "COOKIE", "COOKIE"]),  # ... or cookies
    (2, ["COOKIE"] * 4),                           # cookies always
])
def test_syn_queue_fills_then_cookies_or_drops(cookies, expect):
    k, _ = listener(1, tcp_syncookies=cookies)
    assert [k.syn_only(syn(i)).value for i in range(4)] == expect


def test_a_full_accept_queue_drops_even_cookies():
    """tcp_conn_request tests sk_acceptq_is_full after the cookie decision."""
    k, fd = listener(0, tcp_syncookies=2)
    assert k.syn(syn(0)).value == "a"
    assert k.syn_only(syn(1)).value == "DROP"
    assert "accept queue is full" in k.syn_only(syn(2)).reason


@pytest.mark.parametrize("abort, expect", [(0, "DROP"), (1, "RST")])
def test_ack_on_a_full_accept_queue(abort, expect):
    """Two request sockets, then cookies fill the accept queue (backlog 1 holds 2): the
    requests' ACKs overflow (tcp_check_req: listen_overflow)."""
    k, fd = listener(1, tcp_abort_on_overflow=abort)
    assert [k.syn_only(syn(i)).value for i in (0, 1)] == ["SYNACK", "SYNACK"]
    assert [k.syn(syn(i)).value for i in (2, 3)] == ["a", "a"]  # cookies: qlen 2 > backlog 1
    assert k.ack(syn(0)).value == expect
    s, out = k.accept(fd, "s")
    assert out.value == "198.18.0.1:40002"
    # a dropped ACK leaves the request (acked = 1): the ACK again finds room now; a reset
    # request is gone, and the harness sends nothing more
    assert k.ack(syn(0)).value == ("a" if abort == 0 else "DROP")


def test_cookie_ack_needs_cookies_still_on():
    k, _ = listener(0, tcp_syncookies=2)
    k.syn_only(syn(0))
    k.sysctls = Sysctls(tcp_syncookies=0)
    assert k.ack(syn(0)).value == "RST"


def test_last_quarter_without_cookies():
    sk = Sock("a", max_ack_backlog=1000)
    sk.syn_queue = [object()] * 96
    limits = Sysctls(tcp_syncookies=0, tcp_max_syn_backlog=128)
    assert tcp_conn_request(sk, limits).fate == SynFate.REQUEST  # 128 - 96 = 32, not < 32
    sk.syn_queue.append(object())
    assert tcp_conn_request(sk, limits).fate == SynFate.DROP
    with pytest.raises(ValueError, match="tcp_max_syn_backlog"):
        tcp_conn_request(sk, Sysctls(tcp_syncookies=0))  # the machine's default is unknown


def test_somaxconn_caps_the_backlog():
    k, fd = listener(10, somaxconn=2)
    assert [k.syn(syn(i)).value for i in range(4)] == ["a", "a", "a", "DROP"]


def test_a_cookie_is_taken_only_after_a_recent_overflow_which_shutdown_clears():
    """cookie_v4_check -> tcp_synq_no_recent_overflow: cookie_init_sequence stamped the
    listener (rx_opt.ts_recent_stamp); tcp_disconnect's memset(&tp->rx_opt) clears the stamp,
    so a cookie sent before shutdown() meets a listener that sent none since: a RST."""
    k, fd = listener(0, tcp_syncookies=2)
    assert k.syn_only(syn(0)).value == "COOKIE"
    assert k.syn_only(syn(1)).value == "COOKIE"
    assert k.ack(syn(0)).value == "a"
    k.shutdown(fd)
    k.listen(fd, 8)
    out = k.ack(syn(1))
    assert out.value == "RST" and "tcp_synq_no_recent_overflow" in out.reason
    # a stamp of 0 reads as recent 299-420 s after boot: the model follows the kernel there
    assert set(out.one_of) == {"RST", "a"} and out.random
    assert k.syn_only(syn(2)).value == "COOKIE"  # a new cookie stamps it again
    assert k.ack(syn(2)).value == "a"


def test_a_reuseport_groups_stamp_survives_a_members_shutdown():
    """With SO_REUSEPORT and a group the stamp is the group's (synq_overflow_ts): a member shut
    down and listening again in the same group still takes its cookies."""

    k = Kernel(LINUX_6_18, host_of(), Sysctls(tcp_syncookies=2, tcp_migrate_req=1))
    fds = []
    for name in ("a", "b"):
        fd, _ = k.socket(name, AF_INET, 0)
        k.setsockopt(fd, SockOpt.SO_REUSEPORT, 1)
        k.bind(fd, parse_sockaddr("10.0.0.1:8080"))
        k.listen(fd, 8)
        fds.append(fd)
    flows = [syn(i) for i in range(6)]
    assert [k.syn_only(f).value for f in flows] == ["COOKIE"] * 6
    k.shutdown(fds[0])
    group = k.socks[fds[1]].reuseport_cb
    assert k.socks[fds[0]] in group.closed  # tcp_migrate_req: the closed section
    k.listen(fds[0], 8)
    assert [s.name for s in group.socks] == ["b", "a"]  # reuseport_resurrect: at the end
    assert not group.closed
    assert {k.ack(f).value for f in flows} <= {"a", "b"}
