"""Listener selection predicted exactly: at least 100,000 injected SYNs across SO_REUSEPORT
groups of 2-256, with closes and re-listens between batches, each compared with the model."""

from __future__ import annotations

import time

import pytest

from harness.compare import Check
from harness.lookup_scenarios import scenarios
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
TOTAL = 100_000


@pytest.mark.native_speed("100,000 SYNs take ~260 s under TCG; the corpus's group scenarios check the same picks")
def test_100k_syns_predicted_exactly(pool, capsys):
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool)
    t0 = time.monotonic()
    results = runner.run(scenarios(TOTAL, seed=1))
    elapsed = time.monotonic() - t0
    assert not runner.hash_problem, runner.hash_problem
    syns = [s for r in results for s in r.steps if s.step.verb == "syn"]
    exact = [s for s in syns if Check.EXACT in s.checks and not s.model.one_of]
    wrong = [f"{r.scenario.path}:{s.step.line}: {s.problems}" for r in results for s in r.divergent]
    with capsys.disabled():
        print(f"\n{len(syns)} SYNs injected, {len(exact)} predicted exactly, {len(wrong)} divergent; "
              f"{len(results)} scenarios in {elapsed:.1f} s ({len(syns) / elapsed:.0f} verified lookups/s)")
    assert len(syns) >= TOTAL
    assert len(exact) == len(syns), "some picks were only checked by property"
    assert not wrong, "\n".join(wrong[:20])
