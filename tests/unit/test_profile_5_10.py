"""The 5.10 profile's fields (model/profiles.py LINUX_5_10, docs/kernel-versions/5.10.md): each
one changes the model's answer on a short sequence, and 5.10 answers like 6.12 elsewhere."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from socket import AF_INET

import pytest

from harness.compare import compare
from harness.model_backend import ModelExecutor, host_of
from harness.parser import parse_file, parse_text
from model.addr import parse_sockaddr
from model.bind import BindRules
from model.kernel import Kernel
from model.profiles import (
    DEBIAN_6_1,
    LINUX_5_10,
    LINUX_6_12,
    PROFILES,
    RELEASE_PROFILES,
    profile_for_release,
)
from model.sockopt import SockOpt
from model.sysctl import KEYS, Sysctls

SECRET = 0x1234ABCD  # any calibrated inet_ehashfn secret: the picks below are exact for it


def run(profile, text: str, secret: int | None = None) -> list[str]:
    sc = parse_text("t.scn", text)
    return [o.value for o in ModelExecutor(profile, hash_secret=secret).run(sc)]


def test_release_selects_5_10():
    assert LINUX_5_10 in RELEASE_PROFILES and PROFILES["5.10"] is LINUX_5_10
    assert profile_for_release("5.10.0-35-amd64") == (LINUX_5_10, "")
    assert profile_for_release("5.12.0-1")[0] is LINUX_5_10  # between profiles: the older one


# -- BindRules.fastreuse_tests_owners: the first owner sets the fast path -------------------

REUSEADDR_STALE = """
a = socket(AF_INET, SOCK_STREAM)
setsockopt(a, SO_REUSEADDR, 1)
bind(a, 10.0.0.1:8080)
setsockopt(a, SO_REUSEADDR, 0)
b = socket(AF_INET, SOCK_STREAM)
setsockopt(b, SO_REUSEADDR, 1)
bind(b, 10.0.0.1:8080)
"""

REUSEPORT_STALE = """
a = socket(AF_INET, SOCK_STREAM)
setsockopt(a, SO_REUSEPORT, 1)
bind(a, 10.0.0.1:8080)
setsockopt(a, SO_REUSEPORT, 0)
b = socket(AF_INET, SOCK_STREAM)
setsockopt(b, SO_REUSEPORT, 1)
bind(b, 0.0.0.0:8080)
"""


@pytest.mark.parametrize("text", [REUSEADDR_STALE, REUSEPORT_STALE])
def test_first_owner_fast_path(text):
    """5.10 and 6.1: a's bind found tb->owners empty, so tb->fastreuse = 1 (or
    FASTREUSEPORT_ANY) and b takes the fast path although a no longer shares; 6.12 recorded
    fastreuse 0 (or STRICT on a's address), so b meets a in inet_csk_bind_conflict."""
    assert run(LINUX_6_12, text)[-1] == "EADDRINUSE"
    assert run(LINUX_5_10, text)[-1] == "0"
    assert run(DEBIAN_6_1, text)[-1] == "0"
    only_field = dataclasses.replace(LINUX_6_12, bind=BindRules(fastreuse_tests_owners=True))
    assert run(only_field, text)[-1] == "0"


def test_no_bhash2_walks_every_owner():
    """bhash2=False: the conflict is found by the walk of tb->owners (inet_csk_bind_conflict),
    not by inet_bhash2_addr_any_conflict; the answer is the same as 6.9+."""
    text = """
a = socket(AF_INET, SOCK_STREAM)
bind(a, 0.0.0.0:8080)
b = socket(AF_INET, SOCK_STREAM)
bind(b, 10.0.0.1:8080)
"""
    sc = parse_text("t.scn", text)
    new = ModelExecutor(LINUX_6_12).run(sc)[-1]
    old = ModelExecutor(LINUX_5_10).run(sc)[-1]
    assert new.value == old.value == "EADDRINUSE"
    assert new.reason.startswith("inet_bhash2_addr_any_conflict")
    assert old.reason.startswith("inet_csk_bind_conflict")


def test_bhash2_regressions_are_not_in_5_10():
    """The bhash2 windows' sequences (tests/scenarios/bhash2): 5.10, which walks all owners
    with inet_rcv_saddr_equal, answers each as 6.9+ does."""
    for path in sorted((Path(__file__).parents[1] / "scenarios" / "bhash2").glob("*.scn")):
        sc = parse_file(path)
        assert compare(sc, ModelExecutor(LINUX_5_10).run(sc), None).agreed, path


# -- reuseport_incoming_cpu ------------------------------------------------------------------

def incoming_cpu_group(n_syns: int) -> str:
    lines = []
    for name in ("s0", "s1"):
        lines += [f"{name} = socket(AF_INET, SOCK_STREAM)", f"setsockopt({name}, SO_REUSEPORT, 1)",
                  f"bind({name}, 0.0.0.0:8080)"]
    lines.append("setsockopt(s1, SO_INCOMING_CPU, 0)")
    lines += ["listen(s0, 64)", "listen(s1, 64)"]
    lines += [f"syn(198.18.0.{i + 1}:{40000 + i} > 10.0.0.1:8080)" for i in range(n_syns)]
    return "\n".join(lines) + "\n"


def test_incoming_cpu_inside_group():
    """6.1+: the group scan finds s1, whose SO_INCOMING_CPU is the injector's CPU 0, for every
    SYN; 5.10 takes socks[reciprocal_scale(hash, 2)], so some SYNs go to s0."""
    text = incoming_cpu_group(16)
    new = run(LINUX_6_12, text, SECRET)[-16:]
    old = run(LINUX_5_10, text, SECRET)[-16:]
    assert set(new) == {"s1"}
    assert set(old) == {"s0", "s1"}
    only_field = dataclasses.replace(LINUX_6_12, reuseport_incoming_cpu=False)
    assert run(only_field, text, SECRET)[-16:] == old


# -- migrate_req -----------------------------------------------------------------------------

MIGRATE = """
@sysctl net.ipv4.tcp_migrate_req = 1
l0 = socket(AF_INET, SOCK_STREAM)
l1 = socket(AF_INET, SOCK_STREAM)
setsockopt(l0, SO_REUSEPORT, 1)
setsockopt(l1, SO_REUSEPORT, 1)
bind(l0, 0.0.0.0:8080)
bind(l1, 0.0.0.0:8080)
listen(l0, 32)
listen(l1, 32)
""" + "".join(f"syn_only(198.18.2.{i}:{41000 + i} > 10.0.0.1:8080)\n"
              f"ack(198.18.2.{i}:{41000 + i} > 10.0.0.1:8080)\n" for i in range(1, 9)) + """
queue(l0)
queue(l1)
close(l0)
queue(l1)
"""


def test_tcp_migrate_req_has_no_reader_in_5_10():
    """The sysctl exists in Debian's 5.10 (so the scenario runs), but inet_csk_listen_stop has
    no reuseport_migrate_sock: l0's children are reset, not moved to l1."""
    assert "net.ipv4.tcp_migrate_req" in LINUX_5_10.sysctls
    new = run(LINUX_6_12, MIGRATE, SECRET)
    old = run(LINUX_5_10, MIGRATE, SECRET)
    q0, q1 = int(new[-4]), int(new[-3])
    assert q0 and q1 and (int(old[-4]), int(old[-3])) == (q0, q1)
    assert int(new[-1]) == q0 + q1
    assert int(old[-1]) == q1
    only_field = dataclasses.replace(LINUX_6_12, migrate_req=False)
    assert run(only_field, MIGRATE, SECRET) == old


# -- local_port_range_opt, connect_range_step1 ---------------------------------------------

def test_ip_local_port_range_is_enoprotoopt_in_5_10():
    text = """
c = socket(AF_INET, SOCK_STREAM)
setsockopt(c, IP_LOCAL_PORT_RANGE, 40004-40005)
d = socket(AF_INET6, SOCK_STREAM)
setsockopt(d, IP_LOCAL_PORT_RANGE, 40004-40005)
"""
    assert run(LINUX_6_12, text) == ["0", "0", "0", "0"]
    assert run(DEBIAN_6_1, text) == ["0", "0", "0", "0"]
    assert run(LINUX_5_10, text) == ["0", "ENOPROTOOPT", "0", "ENOPROTOOPT"]


def connect_ports(profile) -> tuple[int, ...]:
    k = Kernel(profile, host_of(), Sysctls(ip_local_port_range=(39990, 40012)))
    a, _ = k.socket("a", AF_INET, 0)
    k.bind(a, parse_sockaddr("10.0.0.2:8080"))
    k.listen(a, 64)
    c, _ = k.socket("c", AF_INET, 0)
    assert k.setsockopt(c, SockOpt.IP_LOCAL_PORT_RANGE, 40000 | 40002 << 16).value == "0"
    out = k.connect(c, parse_sockaddr("10.0.0.2:8080"))
    assert out.value == "0" and out.candidates is not None
    return out.candidates.ports


def test_connect_with_socket_range_keeps_parity_passes_in_6_1():
    """__inet_hash_connect on 40000-40002: 6.8+ scans the three ports with step 1 from any
    offset; Debian's 6.1 evens `remaining` to 2 and starts at low's parity: only 40000 first."""
    assert connect_ports(LINUX_6_12) == (40000, 40001, 40002)
    assert connect_ports(DEBIAN_6_1) == (40000,)
    assert connect_ports(dataclasses.replace(LINUX_6_12, connect_range_step1=False)) == (40000,)


# -- sysctls a kernel lacks ------------------------------------------------------------------

def test_unsupported_sysctl_is_named():
    assert LINUX_5_10.unsupported(KEYS) == ""
    lacking = dataclasses.replace(LINUX_5_10, sysctls=frozenset(KEYS) - {"net.ipv4.tcp_migrate_req"})
    assert lacking.unsupported(["net.ipv4.tcp_migrate_req", "net.core.somaxconn"]) == (
        "sysctl net.ipv4.tcp_migrate_req does not exist in 5.10")



# -- attach_needs_reuseport ----------------------------------------------------------------

def test_attach_after_reuseport_cleared():
    """An unhashed socket got a group from its first attach, then lost SO_REUSEPORT: 5.10's
    reuseport_attach_prog finds the group and attaches; 5.14+ answers EINVAL."""
    text = """
a = socket(AF_INET, SOCK_STREAM)
setsockopt(a, SO_REUSEPORT, 1)
setsockopt(a, SO_ATTACH_REUSEPORT_CBPF, 0)
setsockopt(a, SO_REUSEPORT, 0)
setsockopt(a, SO_ATTACH_REUSEPORT_CBPF, 0)
b = socket(AF_INET, SOCK_STREAM)
setsockopt(b, SO_ATTACH_REUSEPORT_CBPF, 0)
"""
    assert run(LINUX_6_12, text)[-3:] == ["EINVAL", "0", "EINVAL"]
    assert run(LINUX_5_10, text)[-3:] == ["0", "0", "EINVAL"]
    assert run(dataclasses.replace(LINUX_6_12, attach_needs_reuseport=False), text)[-3:] == [
        "0", "0", "EINVAL"]


# -- network_address_broadcast: 5.10's local table has the prefix as RTN_BROADCAST -----------

NETWORK_ADDRESS = """
a = socket(AF_INET, SOCK_STREAM)
bind(a, 10.0.0.0:8080)
b = socket(AF_INET, SOCK_STREAM)
bind(b, 10.0.0.255:8080)
"""


def test_network_address_binds_on_5_10_only():
    assert run(LINUX_5_10, NETWORK_ADDRESS) == ["0", "0", "0", "0"]
    assert run(LINUX_6_12, NETWORK_ADDRESS) == ["0", "EADDRNOTAVAIL", "0", "0"]
    assert run(DEBIAN_6_1, NETWORK_ADDRESS) == ["0", "EADDRNOTAVAIL", "0", "0"]
    alone = dataclasses.replace(LINUX_6_12, network_address_broadcast=True)
    assert run(alone, NETWORK_ADDRESS)[1] == "0"


def test_7_2_has_the_rules_of_6_18():
    seven, host = PROFILES["7.2"], PROFILES["6.18"]
    assert dataclasses.replace(seven, name=host.name, version=host.version) == host
    assert profile_for_release("7.2.13+deb14-cloud-amd64") == (seven, "")


def test_with_fields_sets_named_fields_and_refuses_others():
    from model.profiles import with_fields

    p = with_fields(PROFILES["6.18"], {"connect_bind_reset": "false", "bind.bhash2": "false"})
    assert not p.connect_bind_reset and not p.bind.bhash2 and p.name.startswith("6.18+")
    assert with_fields(LINUX_5_10, {}) is not None and with_fields(LINUX_5_10, {}).name == "5.10"
    for bad in ({"nope": "1"}, {"bind.bhash2": "maybe"}, {"version": "1"}):
        with pytest.raises(ValueError):
            with_fields(LINUX_6_12, bad)
