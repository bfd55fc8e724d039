"""Reports: the terminal summary and divergences, and the JSON of every step."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare import Check, ScenarioResult, StepResult
from model.outcome import Outcome


@dataclass
class Tally:
    scenarios: int = 0
    skipped: int = 0
    agreed: int = 0
    diverged: int = 0
    steps: int = 0
    steps_agreed: int = 0
    steps_diverged: int = 0
    kernel_steps: int = 0
    model_steps: int = 0
    exact: int = 0
    property: int = 0

    def add(self, r: ScenarioResult) -> None:
        self.scenarios += 1
        if r.skipped:
            self.skipped += 1
            return
        self.agreed += r.agreed
        self.diverged += not r.agreed
        for s in r.steps:
            self.steps += 1
            self.steps_agreed += s.agreed
            self.steps_diverged += not s.agreed
            self.kernel_steps += s.kernel is not None
            self.model_steps += s.model is not None
            self.exact += Check.EXACT in s.checks
            self.property += Check.PROPERTY in s.checks


@dataclass
class Summary:
    total: Tally = field(default_factory=Tally)
    features: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))

    @classmethod
    def of(cls, results: list[ScenarioResult]) -> Summary:
        s = cls()
        for r in results:
            s.total.add(r)
            s.features[r.scenario.feature].add(r)
        return s


COLUMNS = ("scenarios", "skipped", "agreed", "diverged", "steps", "steps_agreed",
           "steps_diverged", "kernel_steps", "exact", "property")
HEADERS = ("scenarios", "skipped", "agreed", "diverged", "steps", "agreed", "diverged",
           "kernel", "exact", "property")


def summary_table(summary: Summary) -> str:
    """Scenarios and steps by feature; 'kernel' counts steps executed on the real kernel."""
    rows = [("feature", *HEADERS)]
    for name in sorted(summary.features):
        t = summary.features[name]
        rows.append((name, *(str(getattr(t, c)) for c in COLUMNS)))
    rows.append(("TOTAL", *(str(getattr(summary.total, c)) for c in COLUMNS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)))
        if j == 0 or j == len(rows) - 2:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _outcome_text(o: Outcome | None) -> str:
    if o is None:
        return "(not run)"
    text = o.value
    if isinstance(o.choice, int):
        text += f"  (picked port {o.choice})"
    if o.reason:
        text += f"  -- {o.reason}"
    return text


def reproducer(result: ScenarioResult, upto: StepResult) -> str:
    """The scenario's directives and steps up to the first divergent one: rerunnable."""
    sc = result.scenario
    keep = [ln for ln in sc.lines if ln.lstrip().startswith("@")]
    step_lines = {s.line for s in sc.steps if s.line <= upto.step.line}
    keep += [sc.lines[i - 1] for i in sorted(step_lines)]
    return "\n".join(keep) + "\n"


def divergence_text(result: ScenarioResult, minimal: str | None = None) -> str:
    """How to read it: the step, what each side said (the model with its reason), the problem."""
    out = [f"DIVERGED {result.scenario.path}"]
    for s in result.divergent:
        expect = f" = {s.step.expect}" if s.step.expect is not None else ""
        expect += "".join(f"   {c}" for c in s.step.versions)  # as written, every version's
        out.append(f"  line {s.step.line}: {s.step.call}{expect}")
        out.append(f"    model : {_outcome_text(s.model)}")
        out.append(f"    kernel: {_outcome_text(s.kernel)}")
        for p in s.problems:
            out.append(f"    problem: {p}")
    first = result.divergent[0]
    if minimal is not None:
        out.append("  minimal reproducer (steps removed while the same divergence remained):")
        out += ["    " + ln for ln in minimal.splitlines()]
    else:
        out.append(f"  reproducer (steps up to line {first.step.line}; save as a .scn and 'sockharness run' it):")
        out += ["    " + ln for ln in reproducer(result, first).splitlines()]
    return "\n".join(out)


def _outcome_json(o: Outcome | None) -> dict | None:
    if o is None:
        return None
    d: dict = {"value": o.value}
    if o.reason:
        d["reason"] = o.reason
    if o.choice is not None:
        d["choice"] = o.choice
    if o.candidates is not None:
        d["candidates"] = {"rule": o.candidates.rule, "count": len(o.candidates.ports),
                           "ports": o.candidates.describe()}
    if o.one_of:
        d["one_of"] = list(o.one_of)
    if o.random:
        d["random"] = True
    return d


def to_json(results: list[ScenarioResult], meta: dict) -> dict:
    summary = Summary.of(results)
    return {
        **meta,
        "summary": {c: getattr(summary.total, c) for c in (*COLUMNS, "model_steps")},
        "features": {k: {c: getattr(v, c) for c in COLUMNS} for k, v in sorted(summary.features.items())},
        "scenarios": [
            {
                "path": str(r.scenario.path),
                "feature": r.scenario.feature,
                "skipped": r.skipped or None,
                "agreed": r.agreed,
                "sysctls": dict(r.scenario.sysctls),
                "steps": [
                    {
                        "line": s.step.line,
                        "call": s.step.call,
                        "expect": s.expect,
                        "expect_from": s.expect_from or None,
                        "model": _outcome_json(s.model),
                        "kernel": _outcome_json(s.kernel),
                        "checks": [c.value for c in s.checks],
                        "problems": s.problems,
                    }
                    for s in r.steps
                ],
            }
            for r in results
        ],
    }


def write_json(path: Path, results: list[ScenarioResult], meta: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(results, meta), indent=1) + "\n")


def write_junit(path: Path, results: list[ScenarioResult], meta: dict) -> None:
    """JUnit XML: one testcase per scenario run; a divergence is a failure, a skip says why."""
    import xml.etree.ElementTree as ET

    summary = Summary.of(results).total
    suite = ET.Element("testsuite", name=f"sockharness corpus ({meta.get('kernel_release', '?')}, "
                       f"profile {meta.get('profile', '?')})", tests=str(summary.scenarios),
                       failures=str(summary.diverged), skipped=str(summary.skipped), errors="0")
    props = ET.SubElement(suite, "properties")
    for key in ("profile", "kernel_release", "expectations"):
        if key in meta:
            ET.SubElement(props, "property", name=key, value=str(meta[key]))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=r.scenario.feature,
                             name=str(r.scenario.path))
        if r.skipped:
            ET.SubElement(case, "skipped", message=r.skipped)
        elif not r.agreed:
            first = r.divergent[0]
            fail = ET.SubElement(case, "failure", message=f"line {first.step.line}: {first.step.call}: "
                                 f"model {_outcome_text(first.model)}; kernel {_outcome_text(first.kernel)}")
            fail.text = divergence_text(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
