"""More completed handshakes at once than the worker may hold descriptors: the sweep closes
each child as it accepts it, so a queue longer than RLIMIT_NOFILE (1024 in a guest) still names
every child's listener instead of ending in EMFILE and NO_CHILD (the 5.10 guest's soak found it)."""

from __future__ import annotations

import resource

import pytest

from harness.parser import parse_text
from harness.runner import Backend, Runner
from harness.running import running_profile
from harness.worker import Pool

pytestmark = pytest.mark.kernel
LIMIT = 128  # descriptors the worker may hold: fewer than the children queued at once
SYNS = 3 * LIMIT


def test_queue_longer_than_rlimit_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lines = ["s0 = socket(AF_INET, SOCK_STREAM)", "bind(s0, 10.0.0.1:8080)", f"listen(s0, {SYNS + 16})"]
    lines += [f"syn(198.18.{1 + i // 250}.{1 + i % 250}:{1024 + i} > 10.0.0.1:8080) = s0" for i in range(SYNS)]
    sc = parse_text("many-children.scn", "\n".join(lines) + "\n")
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, hard))
    try:
        with Pool() as pool:  # its worker inherits the lowered limit
            r = Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one(sc)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    syns = [s for s in r.steps if s.step.verb == "syn"]
    assert len(syns) == SYNS
    assert r.agreed, [(s.step.line, s.problems) for s in r.divergent][:5]
    assert all(s.kernel.value == "s0" for s in syns)
