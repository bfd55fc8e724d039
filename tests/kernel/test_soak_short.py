"""A short soak (harness/soak.py, `make soak` runs 10^6): generated groups of 1-256 with every
steering, closes, shutdowns, re-listens and migrations, model against kernel."""

from __future__ import annotations

import pytest

from harness import soak
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel


def test_a_short_soak_agrees(pool, tmp_path, capsys):
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool, expectations=False)
    tally = soak.run(runner, 8000, seed=7, out=tmp_path, say=lambda s: None)
    with capsys.disabled():
        print(f"\nsoak: {tally.line()}")
    assert tally.syns >= 8000 and tally.exact > 0
    assert not runner.hash_problem, runner.hash_problem
    assert tally.passed, f"{tally.line()}; {tally.skipped[:3]}; kept: {sorted(p.name for p in tmp_path.iterdir())}"
