"""IPv6 reuseport picks are checked by property: the right group, the same socket again for the
same tuple (also after the queues were swept), and a spread over every member."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.compare import Check
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
    flows = [f"syn([2001:db8::{i // 200 + 1}:{i % 200 + 1}]:{30000 + i} > [fd00::1]:8080)" for i in range(SYNS)]
    lines += flows
    lines.append("getsockname(s0)")  # any other step: the queued connections are swept
    lines += flows[:64]  # the same tuples again
    return "\n".join(lines) + "\n"


def test_ipv6_group_picks_by_property(pool):
    res = Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one(parse_text("<ipv6-group>", scenario_text()))
    syns = [s for s in res.steps if s.step.verb == "syn"]
    assert len(syns) == SYNS + 64
    assert all(Check.PROPERTY in s.checks and Check.EXACT not in s.checks for s in syns)
    assert res.agreed, [(s.step.line, s.problems) for s in res.divergent][:5]
    first = Counter(s.kernel.value for s in syns[:SYNS])
    assert set(first) == {f"s{i}" for i in range(MEMBERS)}, first  # every member got some
    assert max(first.values()) < SYNS / 2, first
    again = [s.kernel.value for s in syns[SYNS:]]
    assert again == [s.kernel.value for s in syns[:64]]  # same tuple, same socket
