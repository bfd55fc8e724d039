"""The bhash2 regression windows as profile differences: each profile departs from the host
kernel's recorded results on exactly the sequences its kernel got wrong (derived from the fix
commits' code; model/bind.py BindRules, model/profiles.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.compare import compare
from harness.model_backend import ModelExecutor
from harness.parser import parse_file
from model.profiles import PROFILES

DIR = Path(__file__).parents[1] / "scenarios" / "bhash2"
# profile -> sequences whose last bind() differs from 6.9+ (the table of the research note:
# 6.2 window A, B, C; 6.3-6.5 B, C, D; 6.8.0-6.8.4 D, E; Debian 6.1.168+ D', F)
EXPECTED = {
    "6.18": set(),
    "6.12": set(),
    "6.2-bhash2": {"A", "B", "C"},
    "6.5-bhash2": {"B", "C", "D"},
    "6.8-bhash2": {"D", "E"},
    "6.1": {"D1", "F"},
}


@pytest.mark.parametrize("profile", sorted(EXPECTED))
def test_profile_departs_on_its_regressions(profile):
    diverged = set()
    for path in sorted(DIR.glob("*.scn")):
        sc = parse_file(path)
        res = compare(sc, ModelExecutor(PROFILES[profile]).run(sc), None)
        if not res.agreed:
            last_bind = max(s.line for s in sc.steps if s.verb == "bind")
            assert [s.step.line for s in res.divergent] in ([last_bind], [last_bind, last_bind + 1]), path
            diverged.add(path.stem.split("-")[0])
    assert diverged == EXPECTED[profile]


def test_regression_results_name_the_rule():
    sc = parse_file(DIR / "F-mapped-any-then-mapped.scn")
    host = ModelExecutor(PROFILES["6.18"]).run(sc)
    debian = ModelExecutor(PROFILES["6.1"]).run(sc)
    assert host[-1].value == "EADDRINUSE" and "inet_bhash2_addr_any_conflict" in host[-1].reason
    assert "conflicts with a (" in host[-1].reason
    assert debian[-1].value == "0"
