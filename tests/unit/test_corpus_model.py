"""The whole corpus on the model alone, against the expectations recorded from the kernel.
Needs no root: this is how the model is regression-checked on any machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.compare import compare
from harness.model_backend import ModelExecutor
from harness.parser import parse_file
from harness.runner import collect
from model.profiles import LINUX_6_18

CORPUS = Path(__file__).parents[1] / "scenarios"
FILES = collect([CORPUS])


def test_corpus_is_large_and_fully_recorded():
    """Every step has a recorded value except those whose value the kernel picks at random
    (an ephemeral port, a reuseport pick by the namespace's hash secret)."""
    assert len(FILES) >= 100
    for f in FILES:
        sc = parse_file(f)
        outcomes = ModelExecutor(LINUX_6_18).run(sc)
        unrecorded = [s.line for s, o in zip(sc.steps, outcomes, strict=True)
                      if s.expect is None and not o.random]
        assert not unrecorded, f"{f}: steps without a recorded expectation at lines {unrecorded}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_model_meets_recorded_expectations(path):
    sc = parse_file(path)
    res = compare(sc, ModelExecutor(LINUX_6_18).run(sc), None)
    assert res.agreed, "\n".join(f"line {s.step.line}: {s.problems}" for s in res.divergent)
