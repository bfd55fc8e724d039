"""minimize.py: reproducers within a budget of candidates and steps, labelled minimal only
when no single step can go."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.compare import ScenarioResult
from harness.minimize import Progress, Status, _signature, minimize
from harness.parser import ScenarioError, parse_file, parse_text
from harness.runner import Backend, Runner
from harness.scenario import Scenario
from model.profiles import LINUX_6_18

ROOT = Path(__file__).parents[2]


class Counting:
    """A model-only rerun that records what it was given."""

    def __init__(self) -> None:
        self.runner = Runner(LINUX_6_18, Backend.MODEL)
        self.calls: list[Scenario] = []

    def __call__(self, sc: Scenario) -> ScenarioResult:
        self.calls.append(sc)
        return self.runner.run_one(sc)

    @property
    def steps(self) -> int:
        return sum(len(sc.steps) for sc in self.calls)


def wrong_in_256_plain(tmp_path: Path) -> ScenarioResult:
    """groups/256-plain.scn with one wrong expectation: the 201st listen() said to fail."""
    text = (ROOT / "tests/scenarios/groups/256-plain.scn").read_text()
    assert "listen(s200, 4096) = 0\n" in text
    path = tmp_path / "256-wrong.scn"
    path.write_text(text.replace("listen(s200, 4096) = 0\n", "listen(s200, 4096) = EADDRINUSE\n"))
    res = Runner(LINUX_6_18, Backend.MODEL).run_one(parse_file(path))
    assert [s.step.call for s in res.divergent] == ["listen(s200, 4096)"]
    return res


def reproduces(text: str, target, rerun) -> bool:
    try:
        sc = parse_text("t.scn", text)
    except ScenarioError:
        return False
    return _signature(rerun(sc)) == target


def test_one_wrong_step_in_256_plain_shrinks_to_a_1_minimal_reproducer(tmp_path):
    res = wrong_in_256_plain(tmp_path)
    rerun = Counting()
    red = minimize(res, rerun)
    assert red.status is Status.MINIMAL and red.minimal
    assert red.text.splitlines() == ["s200 = socket(AF_INET, SOCK_STREAM) = 0",
                                     "listen(s200, 4096) = EADDRINUSE"]
    assert red.reruns == len(rerun.calls) and red.reruns + red.unparsable <= 200
    assert red.label.startswith("minimal reproducer")
    # the claim, checked independently: it reproduces, and no single step can be removed
    target = _signature(res)
    lines = red.text.splitlines()
    assert reproduces(red.text, target, rerun)
    for i in range(len(lines) - 1):
        assert not reproduces("\n".join(lines[:i] + lines[i + 1:]) + "\n", target, rerun)


def test_budget_hit_is_labelled_reduced_not_minimal(tmp_path):
    res = wrong_in_256_plain(tmp_path)
    rerun = Counting()
    red = minimize(res, rerun, max_candidates=5)
    assert red.status is Status.REDUCED and not red.minimal
    assert red.reruns + red.unparsable == 5 and red.reruns == len(rerun.calls)
    assert "reduced" in red.label and "budget hit" in red.label
    assert "minimal reproducer" not in red.label
    assert red.steps_after < red.steps_before  # it did shrink: and says by how much
    assert f"{red.steps_before} -> {red.steps_after} steps" in red.label
    assert reproduces(red.text, _signature(res), rerun)  # what it returns still reproduces


def test_unparsable_candidates_are_not_rerun_and_count(tmp_path):
    res = wrong_in_256_plain(tmp_path)
    rerun = Counting()
    red = minimize(res, rerun)
    assert red.unparsable > 0  # removing s200's socket() line is tried, and refused unrun
    for sc in rerun.calls:  # every rerun was a scenario that parsed and names s200
        assert sc.steps[-1].call == "listen(s200, 4096)"
    shown = []
    minimize(res, Counting(), max_candidates=7, progress=shown.append)
    assert [p.candidates for p in shown] == list(range(1, 8))  # unparsable ones counted too
    assert all(isinstance(p, Progress) and p.budget == 7 for p in shown)


def test_steps_rerun_stay_within_the_step_budget():
    # every listener counts in inuse(tcp), and the model's count is in the problem: no run of
    # whole sockets can go without changing the divergence, so the chunks all fail and the
    # step budget ends the search (before single steps, where a lone bind() could go)
    lines = []
    for i in range(1000):
        lines += [f"s{i} = socket(AF_INET, SOCK_STREAM)", f"bind(s{i}, 10.0.0.1:{10000 + i})",
                  f"listen(s{i}, 1)"]
    lines.append("inuse(tcp) = 7")
    sc = parse_text("big.scn", "\n".join(lines) + "\n")
    res = Runner(LINUX_6_18, Backend.MODEL).run_one(sc)
    rerun = Counting()
    red = minimize(res, rerun, max_candidates=10_000, max_steps=20_000)
    assert red.status is Status.REDUCED
    assert rerun.steps <= 20_000 and len(rerun.calls) == red.reruns
    assert red.steps_after == red.steps_before == 3001
    assert "budget hit" in red.label


def test_cut_that_does_not_reproduce_is_not_called_minimal():
    sc = parse_text("flaky.scn", "a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:80) = EINVAL\n"
                    "listen(a, 1)\nclose(a)\n")
    res = Runner(LINUX_6_18, Backend.MODEL).run_one(sc)
    assert res.divergent and res.divergent[0].step.line == 2

    def never(candidate: Scenario) -> ScenarioResult:  # as if the divergence did not recur
        return ScenarioResult(candidate)

    red = minimize(res, never)
    assert red.status is Status.NOT_REPRODUCED and red.reruns == 1
    assert red.text.splitlines() == ["a = socket(AF_INET, SOCK_STREAM)", "bind(a, 10.0.0.1:80) = EINVAL"]
    assert "minimal" not in red.label


def test_first_step_divergence_and_directives():
    sc = parse_text("d.scn", "@sysctl net.ipv4.ip_local_port_range = 40000 40001\n"
                    "a = socket(AF_INET, SOCK_STREAM) = EINVAL\nlisten(a, 1)\n")
    res = Runner(LINUX_6_18, Backend.MODEL).run_one(sc)
    rerun = Counting()
    red = minimize(res, rerun)
    assert red.status is Status.MINIMAL and red.unparsable == 0
    assert red.reruns == 1  # only the check that the cut still diverges
    assert red.text.splitlines() == ["@sysctl net.ipv4.ip_local_port_range = 40000 40001",
                                     "a = socket(AF_INET, SOCK_STREAM) = EINVAL"]


def test_needs_a_divergent_result():
    sc = parse_text("ok.scn", "a = socket(AF_INET, SOCK_STREAM) = 0\n")
    with pytest.raises(ValueError, match="needs a divergent result"):
        minimize(Runner(LINUX_6_18, Backend.MODEL).run_one(sc), Counting())
