"""Comparison: model against kernel against the stated expectation, step by step."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.scenario import DEFAULT_SPEC, Scenario, Step, Version
from model.outcome import Outcome

if TYPE_CHECKING:
    from harness.minimize import Reduction


class Check(enum.Enum):
    EXACT = "exact"  # the values were compared
    PROPERTY = "property"  # the kernel's random pick was checked against the model's set


# Why a step was not checked (StepResult.unchecked): a model-only run has only the files'
# expectations to compare the model with, a kernel-only run only them for the kernel.
NO_EXPECTATION = "no expectation stated (model-only runs compare against `= …` only)"
NO_EXPECTATION_KERNEL = "no expectation stated (kernel-only runs compare against `= …` only)"
RANDOM_PICK = "a random kernel pick: only a kernel run can check it"
NOT_RUN = "run on neither backend"
# the kernel value of a step the kernel backend failed to run (a harness bug, never a kernel
# answer; harness/kernel_backend.py:harness_error): the scenario is an error, not a divergence
HARNESS_ERROR = "HARNESS_ERROR"


@dataclass
class StepResult:
    step: Step
    model: Outcome | None
    kernel: Outcome | None
    problems: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    expect: str | None = None  # the expectation checked (None: none)
    expect_from: str = ""  # its source: "default" (the bare `= …`) or a clause's versions

    @property
    def agreed(self) -> bool:
        """No problem found; true of an unchecked step too (see `checked`)."""
        return not self.problems

    @property
    def checked(self) -> bool:
        """Was anything compared: model against kernel, or either against the expectation?"""
        return bool(self.checks)

    @property
    def unchecked(self) -> str:
        """Why nothing was compared ("" when something was)."""
        if self.checks:
            return ""
        if self.model is None and self.kernel is None:
            return NOT_RUN
        if self.model is not None and self.model.random and self.expect is not None:
            return RANDOM_PICK
        return NO_EXPECTATION if self.kernel is None else NO_EXPECTATION_KERNEL


@dataclass
class ScenarioResult:
    scenario: Scenario
    steps: list[StepResult] = field(default_factory=list)
    skipped: str = ""  # why the scenario did not run (e.g. @kernel excludes this profile)
    timing: bool = False  # skipped for a race only a slow (emulated) kernel loses
    error: str = ""  # why it could not finish (the worker crashed, or failed a step)
    seconds: float = 0.0  # wall time the runner spent on it (for the JUnit `time`)
    reduction: Reduction | None = None  # its divergence shrunk by the minimizer, if it ran

    @property
    def divergent(self) -> list[StepResult]:
        return [s for s in self.steps if not s.agreed]

    @property
    def agreed(self) -> bool:
        return not self.skipped and not self.error and not self.divergent

    @property
    def checked(self) -> bool:
        """Ran, and at least one step was compared with something."""
        return not self.skipped and not self.error and any(s.checked for s in self.steps)


def compare_step(step: Step, model: Outcome | None, kernel: Outcome | None,
                 spec: Version | None = DEFAULT_SPEC) -> StepResult:
    """One step's outcomes against each other and against the expectation of kernel version
    `spec` (None: the files' expectations left out)."""
    r = StepResult(step, model, kernel)
    if model is not None and kernel is not None:
        if model.one_of:  # the model could only name the group: a property check, not exact
            r.checks.append(Check.PROPERTY)
            if kernel.value not in model.one_of:
                r.problems.append(f"kernel chose {kernel.value}, not one of {', '.join(model.one_of)}")
            elif model.value != kernel.value:  # the same tuple went elsewhere before
                r.problems.append(f"model {model.value} != kernel {kernel.value}")
        else:
            r.checks.append(Check.EXACT)
            if model.value != kernel.value:
                r.problems.append(f"model {model.value} != kernel {kernel.value}")
        # the kernel reports the port after every successful bind/listen/connect (whether it
        # searched for one is the model's to say): a search's result must be one it allows
        if isinstance(kernel.choice, int) and kernel.choice and model.candidates is not None:
            r.checks.append(Check.PROPERTY)
            if kernel.choice not in model.candidates:
                r.problems.append(
                    f"kernel picked port {kernel.choice}, not among the model's "
                    f"{model.candidates.describe()}"
                )
    if spec is not None:
        r.expect, r.expect_from = step.expected(spec)
    if r.expect is not None:
        which = "expected" if r.expect_from == "default" else f"expected on {r.expect_from}"
        if kernel is not None:
            if model is None:  # a kernel-only run: the expectation is all it is checked against
                r.checks.append(Check.EXACT)
            if kernel.value != r.expect:
                r.problems.append(f"kernel {kernel.value} != {which} {r.expect}")
        # a model-only run: a random pick (model.random) can't be compared, only the kernel
        # can say; it stays unchecked (StepResult.unchecked says why)
        if model is not None and kernel is None and not model.random:
            r.checks.append(Check.EXACT)
            if model.value != r.expect:
                r.problems.append(f"model {model.value} != {which} {r.expect}")
    return r


def compare(
    scenario: Scenario, model: list[Outcome] | None, kernel: list[Outcome] | None,
    spec: Version | None = DEFAULT_SPEC,
) -> ScenarioResult:
    """Each step's outcomes; `spec` is the kernel version whose expectations apply (a version
    clause where the step has one, else the bare `= …`); None leaves the files' expectations
    out (model against kernel only, for a kernel no expectation was recorded on)."""
    res = ScenarioResult(scenario)
    for i, step in enumerate(scenario.steps):
        res.steps.append(
            compare_step(step, model[i] if model else None, kernel[i] if kernel else None, spec)
        )
    failed = next((o.value for o in kernel or () if o.value.startswith(HARNESS_ERROR + "(")), None)
    if failed:
        res.error = f"the kernel backend failed a step: {failed}"
    return res
