"""The whole scenario corpus on the real kernel and the model, step by step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.report import Summary, summary_table
from harness.runner import Backend, Runner, load
from harness.running import running_profile

pytestmark = pytest.mark.kernel
CORPUS = Path(__file__).parents[1] / "scenarios"


def test_corpus_agrees_on_model_and_kernel(pool, capsys):
    """Under the running kernel's profile, against its own expectations (version clauses)."""
    profile, note = running_profile()
    scenarios = load([CORPUS])
    results = Runner(profile, Backend.BOTH, 0, pool).run(scenarios)
    summary = Summary.of(results)
    with capsys.disabled():
        print("\n" + summary_table(summary))
    t = summary.total
    assert t.kernel_steps > 0 and t.kernel_steps == t.steps, "steps that did not run on the kernel"
    timing = [r for r in results if r.timing]
    if os.environ.get("SOCKH_GUEST") == "1":  # an emulated kernel: only its timing races may skip
        with capsys.disabled():
            for r in timing:
                print(f"skipped under emulation: {r.scenario.path}: {r.skipped}")
        assert t.skipped == len(timing)
    else:
        assert t.skipped == 0, [(str(r.scenario.path), r.skipped) for r in results if r.skipped]
    bad = [f"{r.scenario.path}:{s.step.line}: {s.problems}" for r in results if not r.skipped
           for s in r.divergent]
    assert not bad, "\n".join(bad)
