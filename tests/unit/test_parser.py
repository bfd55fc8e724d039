"""The .scn parser: what it accepts, and errors that name file:line:col and what was expected."""

from __future__ import annotations

import socket

import pytest

from harness.parser import ScenarioError, parse_text
from harness.scenario import BindStep, InuseStep, SetsockoptStep, SocketStep
from model.sockopt import SockOpt

GOOD = """\
@kernel >= 4.6
@sysctl net.ipv4.ip_local_port_range = 40000 40009   # comment
@cpu 1
a = socket(AF_INET, SOCK_STREAM, uid=1000)   # created as uid 1000
setsockopt(a, SO_REUSEPORT, 1) = 0
bind(a, 10.0.0.1:8080) = EADDRINUSE
inuse(tcp) = 0
"""


def test_parses_directives_and_steps():
    sc = parse_text("x.scn", GOOD)
    assert sc.cpu == 1
    assert sc.sysctls == (("net.ipv4.ip_local_port_range", "40000 40009"),)
    assert sc.kernel[0].admits((6, 18)) and not sc.kernel[0].admits((4, 5))
    s0, s1, s2, s3 = sc.steps
    assert isinstance(s0, SocketStep) and s0.uid == 1000 and s0.family == socket.AF_INET
    assert s0.expect is None and s0.line == 4
    assert isinstance(s1, SetsockoptStep) and s1.option is SockOpt.SO_REUSEPORT and s1.expect == "0"
    assert isinstance(s2, BindStep) and str(s2.addr) == "10.0.0.1:8080" and s2.expect == "EADDRINUSE"
    assert isinstance(s3, InuseStep) and s3.expect == "0"


@pytest.mark.parametrize(
    "text, line, col, words",
    [
        ("a = socket(AF_INET, SOCK_STREAM)\nfrobnicate(a)\n", 2, 1, "unknown verb 'frobnicate'"),
        ("a = socket(AF_INET, SOCK_STREAM)\nsetsockopt(a, SO_FOO, 1)\n", 2, 15, "unknown option 'SO_FOO'"),
        ("a = socket(AF_INET, SOCK_STREAM, gid=3)\n", 1, 34, "unknown option 'gid'"),
        ("bind(b, 10.0.0.1:80)\n", 1, 6, "unknown socket 'b'"),
        ("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.300:80)\n", 2, 9, "expected an address"),
        ("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:99999)\n", 2, 9, "port 0-65535"),
        ("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:80\n", 2, 20, "expected ')'"),
        ("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:80) = MAYBE\n", 2, 24, "errno name"),
        ("a = socket(AF_INET, SOCK_STREAM)\nlisten(a)\n", 2, 1, "listen() takes 2 argument(s)"),
        ("a = socket(AF_INET, SOCK_STREAM)\nlisten(a, many)\n", 2, 11, "a backlog"),
        ("a = socket(AF_INET, SOCK_RAW)\n", 1, 21, "expected a socket type (SOCK_STREAM, SOCK_DGRAM)"),
        ("a = socket(AF_INET6, SOCK_STREAM)\nbind(a, 10.0.0.1:80)\n", 2, 9, "does not match a's family AF_INET6"),
        ("syn(198.18.0.1:1 - 10.0.0.1:80)\n", 1, 5, "expected 'SRC:PORT > DST:PORT'"),
        ("syn(192.0.2.1:1 > 10.0.0.1:80)\n", 1, 5, "in no client range"),
        ("syn(198.18.0.1:1 > 10.0.0.9:80)\n", 1, 20, "not an address of tun0/tun1"),
        ("syn(198.18.0.1:1 > [fd00::1]:80)\n", 1, 20, "one family"),
        ("syn(198.18.0.1:1 > 10.0.0.1:80) = nobody\n", 1, 35, "a socket, RST or DROP"),
        ("syn(198.18.0.1:1 > 10.0.0.1:80, payload=9999)\n", 1, 33, "payload length 0-1400"),
        ("a = socket(AF_INET, SOCK_STREAM)\nsetsockopt(a, SO_BINDTODEVICE, eth9)\n", 2, 32, "expected a device"),
        ("a = socket(AF_INET, SOCK_STREAM)\nsetsockopt(a, SO_ATTACH_REUSEPORT_CBPF, payload%0)\n", 2, 41, "N >= 1"),
        ("@sysctl net.ipv4.nonsense = 1\na = socket(AF_INET, SOCK_STREAM)\n", 1, 9, "unknown sysctl"),
        ("@kernel ~ 4\na = socket(AF_INET, SOCK_STREAM)\n", 1, 9, "expected '@kernel OP X.Y'"),
        ("a = socket(AF_INET, SOCK_STREAM)\n@cpu 1\n", 2, 1, "must come before the first step"),
        ("a = socket(AF_INET, SOCK_STREAM)\na = socket(AF_INET, SOCK_STREAM)\n", 2, 1, "still open"),
        ("inuse(sctp)\n", 1, 7, "expected one of tcp, tcp6, udp, udp6"),
        ("# nothing\n", 1, 1, "at least one step"),
        ("a = bind(b, 1.2.3.4:5)\n", 1, 1, "only socket(), accept() and sockarray() assign a name"),
        ("a = socket(AF_INET, SOCK_STREAM)\naccept(a)\n", 2, 1, "accept() needs a name"),
        ("a = socket(AF_INET, SOCK_STREAM)\ns = accept(a) = nobody\n", 2, 17, "connecting socket"),
        ("a = socket(AF_INET, SOCK_STREAM)\nconnect(a, 192.0.2.1:80)\n", 2, 12, "address of tun0/tun1"),
        ("a = socket(AF_INET, SOCK_STREAM)\nconnect(a, 127.0.0.1:80)\n", 2, 12, "address of tun0/tun1"),
        ("a = socket(AF_INET, SOCK_STREAM)\nconnect(a, 10.0.0.2:0)\n", 2, 12, "port 1-65535"),
        ("a = socket(AF_INET, SOCK_STREAM)\nconnect(a, 10.0.0.2:80) = YES\n", 2, 27, "errno name"),
        ("a = socket(AF_INET, SOCK_STREAM)\nsetsockopt(a, SO_BINDTODEVICE, tun0)\n"
         "connect(a, 10.0.0.2:80)\n", 3, 9, "bound to device tun0 is not modelled"),
        ("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 127.0.0.1:0)\nconnect(a, 10.0.0.2:80)\n",
         3, 9, "loopback address 127.0.0.1 is not modelled"),
        ("a = socket(AF_INET6, SOCK_STREAM)\nconnect(a, [::ffff:10.0.0.2]:80)\n"
         "connect(a, [fd00::2]:80)\n", 3, 12, "after a v4-mapped connect()"),
        ("a = socket(AF_INET, SOCK_STREAM)\nconnect(a, 10.0.0.2:80)\n"
         "syn(198.18.0.1:1 > 10.0.0.1:80)\n", 3, 1, "syn() cannot share a scenario with connect()"),
        ("tw(1)\n", 1, 1, "tw() takes 0 argument(s)"),
        ("ack(198.18.0.1:1 > 10.0.0.1:80)\n", 1, 5, "send its syn_only() first"),
        ("syn_only(198.18.0.1:1 > 10.0.0.1:80) = YES\n", 1, 40, "SYNACK, COOKIE, RST, DROP"),
        ("syn_only(198.18.0.1:1 > 10.0.0.1:80)\nack(198.18.0.1:1 > 10.0.0.1:80) = SYNACK\n", 2, 35,
         "a socket, RST or DROP"),
        ("tw() = many\n", 1, 8, "a count"),
        ("a = socket(AF_INET, SOCK_STREAM)\nsetsockopt(a, IP_LOCAL_PORT_RANGE, 5)\n", 2, 36, "LOW-HIGH"),
        ("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:80, family=AF_BLUE)\n", 2, 22, "AF_UNSPEC"),
        ("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:80, len=5000)\n", 2, 22, "-1..1024"),
    ],
)
def test_errors_name_file_line_column(text, line, col, words):
    with pytest.raises(ScenarioError) as e:
        parse_text("bad.scn", text)
    assert (e.value.line, e.value.col) == (line, col), str(e.value)
    assert words in e.value.message
    assert str(e.value).startswith(f"bad.scn:{line}:{col}: ")


def test_name_may_be_reused_after_close_and_use_after_close_parses():
    sc = parse_text("x.scn", "a = socket(AF_INET, SOCK_STREAM)\nclose(a)\nbind(a, 10.0.0.1:1)\n"
                    "a = socket(AF_INET, SOCK_STREAM)\n")
    assert [s.verb for s in sc.steps] == ["socket", "close", "bind", "socket"]
