"""The soak's generator (harness/soak.py): every plan parses, the mix covers what `make soak`
promises, kernels without tcp_migrate_req get no migrations, and the tally counts a divergence."""

from __future__ import annotations

from pathlib import Path

from harness.compare import Check, ScenarioResult, StepResult
from harness.parser import parse_text
from harness.soak import STEERING, SoakTally, plans, scenario_text
from model.outcome import Outcome
from model.profiles import LINUX_5_10, LINUX_6_18


def test_plans_cover_the_promised_mix_and_parse():
    made = list(plans(300_000, seed=3, profile=LINUX_6_18))
    # one of each steering and family among the first plans: the text of each parses
    assert sum(p.syns for p in made) >= 300_000
    assert {p.steering for p in made} == set(STEERING)
    assert {p.v6 for p in made} == {False, True} and {p.migrate for p in made} == {False, True}
    assert {1, 256} <= {p.size for p in made}
    sample = {(p.steering, p.v6): p for p in reversed(made[:60])}.values()
    for p in sample:
        sc = parse_text(Path(f"<soak {p.index}>"), scenario_text(p, 3))
        verbs = [s.verb for s in sc.steps]
        assert verbs.count("syn") + verbs.count("syn_only") == p.syns
        assert verbs.count("ack") == verbs.count("syn_only")


def test_no_migrations_where_the_kernel_has_none():
    made = list(plans(200_000, seed=3, profile=LINUX_5_10))
    assert not any(p.migrate or p.steering == "ebpf-migrate" for p in made)
    for p in made[:6]:
        assert "tcp_migrate_req" not in scenario_text(p, 3) and "migrate:" not in scenario_text(p, 3)


def test_same_seed_same_text():
    p = next(iter(plans(1, seed=5, profile=LINUX_6_18)))
    assert scenario_text(p, 5) == scenario_text(p, 5)


def test_tally_counts_exact_property_and_divergent():
    sc = parse_text(Path("<t>"), "s = socket(AF_INET, SOCK_STREAM)\nsyn(198.18.0.1:1 > 10.0.0.1:80)\n"
                    "syn(198.18.0.1:2 > 10.0.0.1:80)\nsyn(198.18.0.1:3 > 10.0.0.1:80)\n")
    o = Outcome("RST")
    steps = [StepResult(sc.steps[0], o, o, checks=[Check.EXACT]),
             StepResult(sc.steps[1], o, o, checks=[Check.EXACT]),
             StepResult(sc.steps[2], o, o, checks=[Check.PROPERTY]),
             StepResult(sc.steps[3], o, o, problems=["model RST, kernel DROP"], checks=[Check.EXACT])]
    t = SoakTally()
    t.add(ScenarioResult(sc, steps))
    assert (t.syns, t.exact, t.by_property, t.divergent) == (3, 1, 1, 1)
    assert not t.passed
