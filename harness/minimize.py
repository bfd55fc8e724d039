"""Shrink a divergent scenario to a minimal reproducer: drop steps while the same divergence
(same call, same problems) still appears first. Greedy one-step removal, rerun each time."""

from __future__ import annotations

from collections.abc import Callable

from harness.compare import ScenarioResult
from harness.parser import ScenarioError, parse_text

MAX_RUNS = 200


def _signature(r: ScenarioResult) -> tuple[str, tuple[str, ...]] | None:
    if r.skipped or not r.divergent:
        return None
    first = r.divergent[0]
    return first.step.call, tuple(first.problems)


def minimize(result: ScenarioResult, rerun: Callable[..., ScenarioResult]) -> str:
    """The smallest scenario text (directives kept) whose first divergence is the same."""
    sc = result.scenario
    target = _signature(result)
    assert target is not None, "minimize needs a divergent result"
    directives = [ln for ln in sc.lines if ln.lstrip().startswith("@")]
    cut = result.divergent[0].step.line
    steps = [sc.lines[s.line - 1] for s in sc.steps if s.line <= cut]
    runs = 0
    changed = True
    while changed and runs < MAX_RUNS:
        changed = False
        for i in range(len(steps) - 2, -1, -1):  # never the divergent (last) step
            trial = steps[:i] + steps[i + 1 :]
            text = "\n".join(directives + trial) + "\n"
            try:
                candidate = parse_text(sc.path, text)
            except ScenarioError:
                continue  # e.g. a socket() line others still use
            runs += 1
            if _signature(rerun(candidate)) == target:
                steps, changed = trial, True
            if runs >= MAX_RUNS:
                break
    return "\n".join(directives + steps) + "\n"
