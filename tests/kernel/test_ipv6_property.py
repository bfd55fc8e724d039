"""IPv6 reuseport picks are exact: the kernel side reads inet6_ehashfn of each tuple with an
eBPF program after the scenario (harness/hashprobe.py) and the model picks by it. Checked over
a group of 4 on an exact address and one on the wildcard, with the same tuples again after a
sweep; and without the hashes the same picks fall back to a property check."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.compare import Check
from harness.model_backend import ModelExecutor
from harness.parser import parse_text
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
MEMBERS, SYNS = 4, 256


def scenario_text() -> str:
    lines = []
    for i in range(MEMBERS):
        lines += [f"s{i} = socket(AF_INET6, SOCK_STREAM)", f"setsockopt(s{i}, SO_REUSEPORT, 1)",
                  f"bind(s{i}, [fd00::1]:8080)", f"listen(s{i}, 1024)"]
    for i in range(MEMBERS):
        lines += [f"w{i} = socket(AF_INET6, SOCK_STREAM)", f"setsockopt(w{i}, SO_REUSEPORT, 1)",
                  f"bind(w{i}, [::]:8081)", f"listen(w{i}, 1024)"]
    flows = [f"syn([2001:db8::{i // 200 + 1}:{i % 200 + 1}]:{30000 + i} > [fd00::1]:8080)" for i in range(SYNS)]
    wild = [f"syn([2001:db8:1::{i // 200 + 1}:{i % 200 + 1}]:{40000 + i} > [fd00::{i % 2 + 1}]:8081)"
            for i in range(SYNS)]
    lines += flows + wild
    lines.append("getsockname(s0)")  # any other step: the queued connections are swept
    lines += flows[:64]  # the same tuples again
    return "\n".join(lines) + "\n"


def test_ipv6_group_picks_exact(pool):
    scenario = parse_text("<ipv6-group>", scenario_text())
    res = Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one(scenario)
    syns = [s for s in res.steps if s.step.verb == "syn"]
    assert len(syns) == 2 * SYNS + 64
    assert res.agreed, [(s.step.line, s.problems) for s in res.divergent][:5]
    assert all(Check.EXACT in s.checks and Check.PROPERTY not in s.checks for s in syns), \
        Counter(tuple(c.value for c in s.checks) for s in syns)
    assert all("inet6_ehashfn = 0x" in s.model.reason for s in syns)
    for part, members in ((syns[:SYNS], "s"), (syns[SYNS:2 * SYNS], "w")):
        spread = Counter(s.kernel.value for s in part)
        assert set(spread) == {f"{members}{i}" for i in range(MEMBERS)}, spread
        assert max(spread.values()) < SYNS / 2, spread
    again = [s.kernel.value for s in syns[2 * SYNS:]]
    assert again == [s.kernel.value for s in syns[:64]]  # same tuple, same socket


def test_without_hashes_picks_are_one_of_the_group():
    """The model alone cannot compute inet6_ehashfn: it names the group (a property check)."""
    scenario = parse_text("<ipv6-group>", scenario_text())
    out = ModelExecutor(running_profile()[0], 0, 0x1234).run(scenario)
    syn = [o for o, s in zip(out, scenario.steps, strict=True) if s.verb == "syn"]
    assert all(o.one_of and o.random for o in syn)
    assert "inet6_ehashfn: one of the group" in syn[0].reason
