"""compare.py: what each step is checked against, and which steps nothing checked."""

from __future__ import annotations

from harness.compare import (
    NO_EXPECTATION,
    NO_EXPECTATION_KERNEL,
    RANDOM_PICK,
    Check,
    ScenarioResult,
    compare,
    compare_step,
)
from harness.parser import parse_text
from model.outcome import Outcome, PortChoice

TEXT = """a = socket(AF_INET, SOCK_STREAM) = 0
bind(a, 10.0.0.1:8080)
bind(a, 10.0.0.1:8081) = EINVAL   [5.10: 0]
getsockname(a) = 10.0.0.1:8080
"""


def steps():
    return parse_text("c.scn", TEXT).steps


def test_model_only_step_without_expectation_is_unchecked_not_agreed():
    r = compare_step(steps()[1], Outcome("0"), None)
    assert r.checks == [] and not r.checked and r.problems == []
    assert r.unchecked == NO_EXPECTATION


def test_model_only_step_with_expectation_is_checked_exactly():
    ok = compare_step(steps()[0], Outcome("0"), None)
    assert ok.checks == [Check.EXACT] and ok.checked and ok.agreed and ok.unchecked == ""
    bad = compare_step(steps()[3], Outcome("10.0.0.1:9999"), None)
    assert bad.checked and bad.problems == ["model 10.0.0.1:9999 != expected 10.0.0.1:8080"]


def test_model_only_random_pick_is_unchecked_even_with_an_expectation():
    # a random pick cannot be compared with a recorded value: it was counted as a property
    # check that nothing made
    r = compare_step(steps()[3], Outcome("10.0.0.1:40000", random=True), None)
    assert r.checks == [] and not r.checked and r.agreed
    assert r.unchecked == RANDOM_PICK


def test_model_and_kernel_are_checked_against_each_other_without_expectation():
    r = compare_step(steps()[1], Outcome("0"), Outcome("0"))
    assert r.checks == [Check.EXACT] and r.checked and r.agreed
    r = compare_step(steps()[1], Outcome("0"), Outcome("EADDRINUSE"))
    assert r.problems == ["model 0 != kernel EADDRINUSE"]


def test_model_and_kernel_against_the_expectation():
    r = compare_step(steps()[2], Outcome("0"), Outcome("0"))
    assert r.expect == "EINVAL" and r.expect_from == "default"
    assert r.problems == ["kernel 0 != expected EINVAL"]
    assert r.checks == [Check.EXACT]  # unchanged for a full run's JSON


def test_kernel_only_checks_the_expectation_and_counts_it():
    r = compare_step(steps()[2], None, Outcome("EINVAL"))
    assert r.checks == [Check.EXACT] and r.agreed
    r = compare_step(steps()[2], None, Outcome("0"))
    assert r.problems == ["kernel 0 != expected EINVAL"]
    r = compare_step(steps()[1], None, Outcome("0"))
    assert not r.checked and r.unchecked == NO_EXPECTATION_KERNEL


def test_version_clause_and_no_expectations():
    r = compare_step(steps()[2], Outcome("EINVAL"), None, spec=(5, 10))
    assert r.expect == "0" and r.expect_from == "5.10"
    assert r.problems == ["model EINVAL != expected on 5.10 0"]
    r = compare_step(steps()[2], Outcome("EINVAL"), None, spec=None)
    assert r.expect is None and not r.checked and r.unchecked == NO_EXPECTATION


def test_property_checks_of_random_picks():
    group = Outcome("a", one_of=("a", "b"))
    r = compare_step(steps()[1], group, Outcome("c"))
    assert r.checks == [Check.PROPERTY] and r.problems == ["kernel chose c, not one of a, b"]
    ports = Outcome("0", candidates=PortChoice((40000, 40002), "test scan"))
    r = compare_step(steps()[1], ports, Outcome("0", choice=40001))
    assert Check.EXACT in r.checks and Check.PROPERTY in r.checks
    assert r.problems and "kernel picked port 40001, not among" in r.problems[0]
    r = compare_step(steps()[1], ports, Outcome("0", choice=40002))
    assert r.agreed


def test_scenario_result_checked_agreed_error():
    sc = parse_text("c.scn", "a = socket(AF_INET, SOCK_STREAM)\nlisten(a, 1)\n")
    res = compare(sc, [Outcome("0"), Outcome("0")], None)
    assert res.agreed and not res.checked  # nothing wrong, and nothing was compared
    res = compare(sc, [Outcome("0"), Outcome("0")], [Outcome("0"), Outcome("0")])
    assert res.agreed and res.checked
    crashed = ScenarioResult(sc, error="namespace worker 12 died")
    assert not crashed.agreed and not crashed.checked and crashed.divergent == []


def test_a_step_the_kernel_backend_failed_makes_the_scenario_an_error_not_a_divergence():
    from harness.report import Summary

    sc = parse_text("c.scn", TEXT)
    model = [Outcome("0"), Outcome("0"), Outcome("EINVAL"), Outcome("10.0.0.1:8080")]
    kernel = [Outcome("0"), Outcome("HARNESS_ERROR(KeyError: 'a' at kernel_backend.py:1)"),
              Outcome("NOT_RUN"), Outcome("NOT_RUN")]
    r = compare(sc, model, kernel)
    assert r.error == "the kernel backend failed a step: HARNESS_ERROR(KeyError: 'a' at kernel_backend.py:1)"
    assert not r.agreed
    t = Summary.of([r]).total
    assert (t.errors, t.diverged, t.agreed) == (1, 0, 0)
    assert compare(sc, model, [Outcome(o.value) for o in model]).error == ""
