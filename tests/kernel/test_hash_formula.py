"""A profile whose inet_ehashfn is not the kernel's: calibration finds no secret, and that is a
reported divergence ("hash formula"), not a crash; picks by hash fall back to property checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.compare import Check
from harness.parser import parse_file
from harness.runner import Backend, Runner
from harness.worker import Pool
from model.profiles import LINUX_6_18

pytestmark = pytest.mark.kernel
GROUPS = Path(__file__).parents[1] / "scenarios" / "groups"


def test_wrong_ehash_formula_is_a_divergence_not_a_crash():
    old = dataclasses.replace(LINUX_6_18, name="6.18-with-6.12-ehashfn", ehash_lport_outside=False)
    with Pool() as pool:  # its own namespace: the session's has a cached calibration
        runner = Runner(old, Backend.BOTH, 0, pool)
        [res] = runner.run([parse_file(GROUPS / "008-plain.scn")])
    assert runner.hash_problem.startswith("hash formula: no secret")
    syns = [s for s in res.steps if s.step.verb == "syn"]
    assert syns and all(Check.PROPERTY in s.checks and s.agreed for s in syns)
