"""Accept/SYN queues and tcp_migrate_req on the real kernel: a rolling restart loses nothing,
migrations are predicted exactly (IPv4, calibrated hash), and repeated runs agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.compare import Check
from harness.parser import parse_file
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
SCENARIOS = Path(__file__).parents[1] / "scenarios"


def test_rolling_restart_loses_no_connection(pool):
    """8 listeners holding 16 connections, replaced one by one with tcp_migrate_req=1: every
    connection ends up queued on a new listener where the model says, none is reset (where
    tcp_migrate_req exists; elsewhere every one is reset, as the model says)."""
    sc = parse_file(SCENARIOS / "migration" / "rolling-8x2.scn")
    r = Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one(sc)
    assert r.agreed, [(s.step.line, s.problems) for s in r.divergent]
    queues = [s for s in r.steps if s.step.verb == "queue"]
    assert len(queues) == 8
    # without tcp_migrate_req (5.10 has the sysctl, nothing reads it: profile migrate_req) a
    # closing listener resets what it queues, as the model says
    assert sum(int(s.kernel.value) for s in queues) == (16 if running_profile()[0].migrate_req else 0)
    assert all(Check.EXACT in s.checks and Check.PROPERTY not in s.checks for s in queues)
    tw = [s for s in r.steps if s.step.verb == "tw"]
    assert tw and all(s.kernel.value == "0" for s in tw)


def test_migrations_are_exact_on_ipv4(pool):
    """Every ack, queue and accept of the migration scenarios is compared exactly: the model
    computed each listener from the namespace's hash, none was a guess followed."""
    scenarios = [parse_file(p) for p in sorted((SCENARIOS / "migration").glob("close-group8-migrate1-*.scn"))]
    for r in Runner(running_profile()[0], Backend.BOTH, 0, pool).run(scenarios):
        assert r.agreed, (r.scenario.path, [(s.step.line, s.problems) for s in r.divergent])
        for s in r.steps:
            if s.step.verb in ("ack", "queue", "accept"):
                assert s.checks == [Check.EXACT], (r.scenario.path, s.step.line)
                assert not s.model.one_of


@pytest.mark.native_speed("under TCG a scenario with hundreds of requests outlives reqsk_timer_handler's first prune (7 s), which the corpus run reports as a skip and this test would call a divergence")
def test_queue_and_migration_scenarios_agree_run_after_run(pool):
    """Timing (SYN-ACK retransmits, request timeouts at 1 s and later) stays out of the way:
    three runs in a row agree (`sockharness run --repeat 20` does twenty)."""
    scenarios = [parse_file(p) for p in sorted((SCENARIOS / "queues").glob("*.scn"))
                 + sorted((SCENARIOS / "migration").glob("*.scn"))]
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool)
    for _ in range(3):
        bad = [(r.scenario.path.name, s.step.line, s.problems)
               for r in runner.run(scenarios) for s in r.divergent]
        assert not bad, bad
