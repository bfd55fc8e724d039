"""model/ebpf.py without a kernel: the program texts the parser takes and refuses, the
REUSEPORT_SOCKARRAY update rules in the kernel's order, and bpf_sk_select_reuseport's errors."""

from __future__ import annotations

import socket

import pytest

from harness.parser import ScenarioError, parse_text
from model.ebpf import Shape, SockArray, parse_ebpf, sk_select_reuseport
from model.reuseport import ReuseportGroup
from model.sock import Sock, TcpState


@pytest.mark.parametrize(("text", "shape", "key", "payload", "drop"), [
    ("pass", Shape.PASS, 0, False, False), ("drop", Shape.DROP, 0, False, False),
    ("m[3]", Shape.SELECT, 3, False, False), ("m[payload%7]|drop", Shape.SELECT, 7, True, True),
    ("migrate:m[0]", Shape.MIGRATE, 0, False, False),
])
def test_program_texts(text, shape, key, payload, drop):
    p = parse_ebpf(text, {"m"})
    assert (p.shape, p.key, p.payload_mod, p.fail_drop, str(p)) == (shape, key, payload, drop, text)


@pytest.mark.parametrize(("text", "says"), [
    ("x[0]", "unknown map 'x'"), ("m[payload%0]", "divides by zero"), ("m[-1]", "expected a key"),
    ("m[4294967296]", "expected a key"), ("m[", "expected an eBPF program"),
    ("migrate:m[payload%2]", "constant key"), ("migrate:m[1]|drop", "constant key"), ("3", "expected an eBPF"),
])
def test_bad_program_texts(text, says):
    with pytest.raises(ValueError, match=says.replace("[", r"\[")):
        parse_ebpf(text, {"m"})


def test_parse_errors_name_file_line_and_column():
    with pytest.raises(ScenarioError) as e:
        parse_text("t.scn", "a = socket(AF_INET, SOCK_STREAM)\nsetsockopt(a, SO_ATTACH_REUSEPORT_EBPF, q[1])\n")
    assert str(e.value).startswith("t.scn:2:41: unknown map 'q'")
    for bad, says in (("m = sockarray(4)\nm = sockarray(2)\n", "exists already"),
                      ("a = socket(AF_INET, SOCK_STREAM)\na = sockarray(2)\n", "names a socket"),
                      ("m = sockarray(4)\nm = socket(AF_INET, SOCK_STREAM)\n", "names a map"),
                      ("m = sockarray(70000)\n", "expected 0..65536 slots"),
                      ("map_delete(m, 0)\n", "unknown map 'm'")):
        with pytest.raises(ScenarioError, match=says):
            parse_text("t.scn", bad)


def _listener(name: str, group: ReuseportGroup | None, family: int = socket.AF_INET) -> Sock:
    sk = Sock(name, family=family, state=TcpState.LISTEN, reuseport=True)
    if group is not None:
        group.socks.append(sk)
        sk.reuseport_cb = group
    return sk


def test_update_rules_in_kernel_order():
    g = ReuseportGroup(bind_inany=True)
    a, b = _listener("a", g), _listener("b", g)
    m = SockArray("m", 2)
    assert m.update(2, None)[0] == "E2BIG"  # the key before the descriptor
    assert m.update(0, None)[0] == "EBADF"
    assert m.update(0, Sock("c"))[0] == "EINVAL"  # not listening
    assert m.update(0, _listener("d", None))[0] == "EINVAL"  # in no group
    assert m.update(0, a)[0] == "0"
    assert m.update(0, a)[0] == "EBUSY"  # sk_user_data is set, even for its own slot
    assert m.update(0, b)[0] == "0"  # replaces a, whose sk_user_data is cleared
    assert m.update(1, a)[0] == "0"
    assert m.delete(1)[0] == "0" and m.delete(1)[0] == "ENOENT" and m.delete(5)[0] == "E2BIG"


def test_select_errors():
    g, other = ReuseportGroup(bind_inany=True), ReuseportGroup(bind_inany=True)
    a = _listener("a", g)
    p = _listener("p", other)
    six = _listener("six", ReuseportGroup(bind_inany=True), socket.AF_INET6)
    m = SockArray("m", 4)
    for k, sk in enumerate((a, p, six)):
        assert m.update(k, sk)[0] == "0"
    assert sk_select_reuseport(m, 0, g, socket.AF_INET) == ("", a)
    assert sk_select_reuseport(m, 1, g, socket.AF_INET)[0] == "EBADFD"  # another group
    assert sk_select_reuseport(m, 2, g, socket.AF_INET)[0] == "EAFNOSUPPORT"
    assert sk_select_reuseport(m, 3, g, socket.AF_INET)[0] == "ENOENT"
    assert sk_select_reuseport(m, 9, g, socket.AF_INET)[0] == "ENOENT"  # past max_entries: NULL
