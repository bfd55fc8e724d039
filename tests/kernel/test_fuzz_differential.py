"""Random socket/setsockopt/bind/listen/close sequences over AF_INET and AF_INET6 (mixed flags,
uids, devices, addresses, small port ranges; a third also connect, accept and shut down
connections over loopback),
and a fifth of injected handshakes against reuseport listeners (syn_only, ack, accept,
re-listen, close, shutdown and listen() after it, under random syncookies, abort_on_overflow and migrate_req), seeded
and reproducible, on model and kernel: every step must agree."""

from __future__ import annotations

import pytest

from harness.fuzz import sequences
from harness.minimize import minimize
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
COUNT, SEED = 2000, 20261122


@pytest.mark.native_speed("2,000 random sequences take ~260 s under TCG; the corpus checks the same rules")
def test_random_sequences_agree(pool, capsys):
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool)
    results = runner.run(sequences(COUNT, SEED))
    bad = [r for r in results if not r.agreed]
    steps = sum(len(r.steps) for r in results)
    with capsys.disabled():
        print(f"\n{len(results)} random sequences (seed {SEED}), {steps} steps, {len(bad)} divergent")
    assert len(results) == COUNT
    if bad:
        repro = minimize(bad[0], runner.run_one)
        pytest.fail(f"{len(bad)} sequences diverge; the first, {repro.label}:\n{repro.text}"
                    f"{bad[0].divergent[0].problems}")
