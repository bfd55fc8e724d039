"""The running kernel's inet_ehashfn, as its profile says: calibration finds exactly one secret
and every SYN's listener is predicted exactly. The other formula (before 6.15 / from 6.15 on)
finds no secret, which is a reported divergence ("hash formula"), not a crash; picks by hash
then fall back to property checks. Run in every booted kernel by `sockharness kernels`, this
checks both formulas."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.compare import Check
from harness.parser import parse_file
from harness.runner import Backend, Runner
from harness.running import running_profile
from harness.worker import Pool

pytestmark = pytest.mark.kernel
GROUPS = Path(__file__).parents[1] / "scenarios" / "groups"
RUNNING, _ = running_profile()


def test_running_kernels_formula_calibrates_and_predicts_exactly():
    with Pool() as pool:  # its own namespace: the session's has a cached calibration
        runner = Runner(RUNNING, Backend.BOTH, 0, pool)
        [res] = runner.run([parse_file(GROUPS / "008-plain.scn")])
        calibration = pool.hash_secret(RUNNING.ehash_lport_outside)
    assert not runner.hash_problem
    assert len(calibration.fits) == 1, calibration
    syns = [s for s in res.steps if s.step.verb == "syn"]
    assert syns and all(s.checks == [Check.EXACT] and s.agreed for s in syns)


def test_wrong_ehash_formula_is_a_divergence_not_a_crash():
    wrong = dataclasses.replace(RUNNING, name=f"{RUNNING.name}-other-ehashfn",
                                ehash_lport_outside=not RUNNING.ehash_lport_outside)
    with Pool() as pool:
        runner = Runner(wrong, Backend.BOTH, 0, pool)
        [res] = runner.run([parse_file(GROUPS / "008-plain.scn")])
    assert runner.hash_problem.startswith("hash formula: no secret")
    syns = [s for s in res.steps if s.step.verb == "syn"]
    assert syns and all(Check.PROPERTY in s.checks and s.agreed for s in syns)
