"""Shrink a divergent scenario to a reproducer: drop steps while the same divergence (same
call, same problems) still appears first. Chunks first, then single steps (delta debugging),
within a deterministic budget of candidates and of steps rerun; the result says whether it
is 1-minimal (no single step can go) or only reduced (the budget ran out first)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from harness.compare import ScenarioResult
from harness.parser import ScenarioError, parse_text
from harness.scenario import Step

MAX_CANDIDATES = 200  # candidates tried: reruns, and those that did not parse
MAX_STEPS = 200_000  # steps parsed and rerun over all candidates (a 100,000-line file: a few)


class Status(enum.Enum):
    MINIMAL = "minimal"  # 1-minimal: removing any one remaining step loses the divergence
    REDUCED = "reduced"  # the budget ran out before that was shown
    NOT_REPRODUCED = "not reproduced"  # the scenario cut at the divergence did not diverge so


@dataclass
class Reduction:
    """The reproducer's text and how far the search for it got."""

    text: str
    status: Status
    reruns: int  # candidates run on the backends
    unparsable: int  # candidates that did not parse (not run)
    steps_before: int  # steps up to and including the divergent one
    steps_after: int

    @property
    def minimal(self) -> bool:
        return self.status is Status.MINIMAL

    @property
    def label(self) -> str:
        """One line for the report: 'minimal' only when 1-minimality was shown."""
        tried = f"{self.reruns} rerun{'s' if self.reruns != 1 else ''}"
        if self.unparsable:
            tried += f", {self.unparsable} unparsable candidate{'s' if self.unparsable != 1 else ''}"
        shrunk = f"{self.steps_before} -> {self.steps_after} steps"
        if self.status is Status.MINIMAL:
            return f"minimal reproducer (no single step can be removed; {shrunk}, {tried})"
        if self.status is Status.REDUCED:
            return (f"reduced reproducer, not shown minimal ({tried}, budget hit; {shrunk}; "
                    "rerun it with a larger --minimize-budget to shrink it further)")
        return (f"reproducer (steps up to the divergence; they did not diverge the same way "
                f"when rerun, so nothing was removed; {tried})")


@dataclass(frozen=True)
class Progress:
    """Where a minimization is, for a progress line."""

    path: str
    candidates: int
    budget: int
    steps_before: int
    steps_now: int


def _signature(r: ScenarioResult) -> tuple[str, tuple[str, ...]] | None:
    if r.skipped or r.error or not r.divergent:
        return None
    first = r.divergent[0]
    return first.step.call, tuple(first.problems)


def _names(step: Step) -> tuple[str | None, str | None]:
    """The socket a step names (creates) and the one it uses, for the cheap pre-parse check."""
    return step.named, step.uses


class _BudgetHit(Exception):
    pass


class _Search:
    """One minimization: the steps kept so far and what the candidates cost."""

    def __init__(self, result: ScenarioResult, rerun: Callable[..., ScenarioResult],
                 max_candidates: int, max_steps: int, progress: Callable[[Progress], None] | None):
        sc = result.scenario
        self.scenario, self.rerun, self.progress = sc, rerun, progress
        self.target = _signature(result)
        self.directives = [ln for ln in sc.lines if ln.lstrip().startswith("@")]
        cut = result.divergent[0].step.line
        kept = [s for s in sc.steps if s.line <= cut]
        self.lines = [sc.lines[s.line - 1] for s in kept]
        self.names = [_names(s) for s in kept]
        self.whole = len(kept) == len(sc.steps)
        self.max_candidates, self.max_steps = max_candidates, max_steps
        self.reruns = self.unparsable = self.steps_used = 0
        self.best: tuple[int, ...] = tuple(range(len(kept)))  # the steps kept so far

    def text(self, keep: tuple[int, ...]) -> str:
        return "\n".join(self.directives + [self.lines[i] for i in keep]) + "\n"

    def _names_resolve(self, keep: tuple[int, ...]) -> bool:
        """Every socket a kept step uses is named by an earlier kept step (else the parser
        refuses the candidate: 'unknown socket'); checked without parsing."""
        named: set[str] = set()
        for i in keep:
            made, used = self.names[i]
            if used is not None and used not in named:
                return False
            if made is not None:
                named.add(made)
        return True

    def reproduces(self, keep: tuple[int, ...]) -> bool:
        """Does the scenario of these steps diverge first the same way? Costs one candidate
        (and, once it parses, its steps)."""
        if self.reruns + self.unparsable >= self.max_candidates:
            raise _BudgetHit
        same = False
        if not self._names_resolve(keep):
            self.unparsable += 1
        else:
            if self.steps_used + len(keep) > self.max_steps:
                raise _BudgetHit
            self.steps_used += len(keep)
            try:
                candidate = parse_text(self.scenario.path, self.text(keep))
            except ScenarioError:  # a parser rule the name check does not know
                self.unparsable += 1
            else:
                self.reruns += 1
                same = _signature(self.rerun(candidate)) == self.target
        if self.progress is not None:
            self.progress(Progress(str(self.scenario.path), self.reruns + self.unparsable,
                                   self.max_candidates, len(self.lines), len(self.best)))
        return same

    def run(self) -> Status:
        last = len(self.lines) - 1  # the divergent step: always kept
        try:
            if not self.whole and not self.reproduces(self.best):
                return Status.NOT_REPRODUCED
            size = max(1, last // 2)
            while True:
                changed = self._pass(size, last)
                if size == 1 and not changed:
                    return Status.MINIMAL  # a whole pass of single removals: none reproduced
                if size > 1:
                    size = max(1, min(size // 2, (len(self.best) - 1) // 2))
        except _BudgetHit:
            return Status.REDUCED

    def _pass(self, size: int, last: int) -> bool:
        """Try removing each run of `size` steps before the divergent one, from the end."""
        changed = False
        hi = len(self.best) - 1
        while hi > 0:
            lo = max(0, hi - size)
            trial = self.best[:lo] + self.best[hi:]
            if self.reproduces(trial):
                self.best, changed = trial, True
            hi = lo
        assert self.best[-1] == last
        return changed


def minimize(result: ScenarioResult, rerun: Callable[..., ScenarioResult],
             max_candidates: int = MAX_CANDIDATES, max_steps: int = MAX_STEPS,
             progress: Callable[[Progress], None] | None = None) -> Reduction:
    """The smallest scenario text found (directives kept) whose first divergence is the same,
    trying at most `max_candidates` candidates and `max_steps` steps in all."""
    if _signature(result) is None:
        raise ValueError(f"{result.scenario.path}: minimize needs a divergent result")
    search = _Search(result, rerun, max_candidates, max_steps, progress)
    status = search.run()
    return Reduction(search.text(search.best), status, search.reruns, search.unparsable,
                     len(search.lines), len(search.best))
