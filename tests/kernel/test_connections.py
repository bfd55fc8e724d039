"""Connections on the real kernel: a profile difference seen end to end, random port results
followed exactly, and TIME_WAIT sockets ended between scenarios (namespaces stay in use)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.parser import parse_file, parse_text
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
SCENARIOS = Path(__file__).parents[1] / "scenarios"


def test_profile_difference_end_to_end(pool):
    """connect/release-1 agrees under this kernel's profile and diverges under the same profile
    with connect_bind_reset flipped (6.18: a bucket opens to connect() again once its bind()-ed
    owner leaves; before, it stays closed)."""
    sc = parse_file(SCENARIOS / "connect" / "release-1.scn")
    profile = running_profile()[0]
    own = Runner(profile, Backend.BOTH, 0, pool).run_one(sc)
    assert own.agreed, [s.problems for s in own.divergent]
    flipped = dataclasses.replace(profile, connect_bind_reset=not profile.connect_bind_reset)
    other = Runner(flipped, Backend.BOTH, 0, pool).run_one(sc)
    last = [s for s in sc.steps if s.verb == "connect"][-1]
    assert [s.step.line for s in other.divergent][:1] == [last.line]
    first = other.divergent[0]
    mine = own.steps[sc.steps.index(last)]
    assert first.kernel.value == mine.kernel.value and first.model.value != first.kernel.value
    assert {first.model.value, first.kernel.value} == {"0", "EADDRNOTAVAIL"}


ODD_RANGE = """\
@sysctl net.ipv4.ip_local_port_range = 40000 40004
a = socket(AF_INET, SOCK_STREAM)
bind(a, 10.0.0.2:8080)
listen(a, 64)
""" + "".join(f"c{i} = socket(AF_INET, SOCK_STREAM)\nconnect(c{i}, 10.0.0.2:8080)\ngetsockname(c{i})\n"
              for i in range(6)) + "inuse(tcp)\n"


def test_random_port_results_are_followed(pool):
    """An odd range of 5 ports: the fifth connect() finds 40000 from one offset and nothing from
    the other. Every run agrees: the model allows both and follows the kernel's."""
    sc = parse_text("odd-range.scn", ODD_RANGE)
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool)
    seen = set()
    for _ in range(12):
        r = runner.run_one(sc)
        assert r.agreed, [(s.step.line, s.problems) for s in r.divergent]
        seen.add(r.steps[-1].kernel.value)  # inuse: 1 + 2 per connection made
    assert seen <= {"9", "11"}


def test_timewait_scenarios_leave_namespaces_clean(pool):
    """Each scenario's TIME_WAIT sockets are destroyed at its end (SOCK_DESTROY), so the pool
    does not have to replace the namespace."""
    if running_profile()[0].version < (6, 1):
        pytest.skip("this kernel cannot SOCK_DESTROY a TIME_WAIT socket (5.10 tcp.c:tcp_abort "
                    "answers EOPNOTSUPP for any !sk_fullsock but a request): the pool replaces "
                    "the namespace instead")
    before = pool.replaced
    scenarios = [parse_file(p) for p in sorted((SCENARIOS / "timewait").glob("client-*.scn"))[:6]]
    for r in Runner(running_profile()[0], Backend.BOTH, 0, pool).run(scenarios):
        assert r.agreed
        assert any(s.step.verb == "tw" and s.kernel.value != "0" for s in r.steps)
    assert pool.replaced == before
