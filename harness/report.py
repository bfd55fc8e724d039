"""Reports: the terminal summary and divergences, the JSON of every step, JUnit XML. Steps are
counted as checked (agreed or diverged) or unchecked (nothing to compare them with)."""

from __future__ import annotations

import json
import re
import socket
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.compare import Check, ScenarioResult, StepResult
from harness.steps import ConnectStep, FlowStep
from model.outcome import Outcome

if TYPE_CHECKING:
    from harness.minimize import Reduction

# C0 controls but tab and newline, DEL, C1 controls, lone surrogates (an undecodable file
# name): a terminal acts on them, and XML 1.0 cannot hold them even as character references
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _escape(m: re.Match) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def visible(text: object) -> str:
    """Text with its control characters as visible escapes (\\x07): safe for a terminal and
    for XML 1.0. Tabs and newlines stay."""
    return _CONTROL.sub(_escape, str(text))


@dataclass
class Tally:
    """Scenarios: skipped + errors + agreed + diverged + unchecked. Steps: checked (agreed +
    diverged) + unchecked; 'agreed' counts only steps something was compared with."""

    scenarios: int = 0
    skipped: int = 0
    errors: int = 0  # could not finish (the namespace worker crashed)
    agreed: int = 0  # at least one step checked, none diverged
    diverged: int = 0
    unchecked: int = 0  # ran, but no step had anything to compare with
    steps: int = 0
    steps_checked: int = 0
    steps_agreed: int = 0
    steps_diverged: int = 0
    steps_unchecked: int = 0
    kernel_steps: int = 0
    model_steps: int = 0
    exact: int = 0
    property: int = 0
    # listener lookups (syn, syn_only, ack, connect) of scenarios where a reuseport hash may
    # pick, on both backends, by family: checked exactly or only by property
    lookups4_exact: int = 0
    lookups4_property: int = 0
    lookups6_exact: int = 0
    lookups6_property: int = 0

    def add(self, r: ScenarioResult) -> None:
        self.scenarios += 1
        if r.skipped:
            self.skipped += 1
            return
        if r.error:
            self.errors += 1
            return
        self.diverged += bool(r.divergent)
        self.agreed += not r.divergent and r.checked
        self.unchecked += not r.divergent and not r.checked
        for s in r.steps:
            self.steps += 1
            self.steps_checked += s.checked
            self.steps_agreed += s.checked and s.agreed
            self.steps_diverged += not s.agreed
            self.steps_unchecked += not s.checked and s.agreed
            self.kernel_steps += s.kernel is not None
            self.model_steps += s.model is not None
            self.exact += Check.EXACT in s.checks
            self.property += Check.PROPERTY in s.checks
        if r.scenario.hashes_matter:
            self._lookups(r)

    def _lookups(self, r: ScenarioResult) -> None:
        for s in r.steps:
            family = lookup_family(s.step)
            if family is None or s.model is None or s.kernel is None:
                continue
            prop = bool(s.model.one_of)  # the model named the group, the kernel picked in it
            name = f"lookups{4 if family == socket.AF_INET else 6}_{'property' if prop else 'exact'}"
            setattr(self, name, getattr(self, name) + 1)


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


COLUMNS = ("scenarios", "skipped", "agreed", "diverged", "unchecked", "steps", "steps_checked",
           "steps_agreed", "steps_diverged", "steps_unchecked", "kernel_steps", "exact", "property")
HEADERS = ("scenarios", "skipped", "agreed", "diverged", "unchecked", "steps", "checked",
           "agreed", "diverged", "unchecked", "kernel", "exact", "property")
LOOKUPS = ("lookups4_exact", "lookups4_property", "lookups6_exact", "lookups6_property")
JSON_TOTALS = (*COLUMNS, "errors", "model_steps", *LOOKUPS)  # the JSON's "summary"


def summary_table(summary: Summary) -> str:
    """Scenarios and steps by feature; of the steps, 'checked' ones agreed or diverged and
    'unchecked' ones had nothing to compare with; 'kernel' counts steps executed on the real
    kernel. Scenario columns 'unchecked' (none of its steps checked) and 'errors' (could not
    finish) appear when not zero."""
    shown = [(c, h) for c, h in zip(COLUMNS, HEADERS, strict=True)
             if c != "unchecked" or summary.total.unchecked]
    if summary.total.errors:
        shown.insert(2, ("errors", "errors"))
    columns, headers = [c for c, _ in shown], [h for _, h in shown]
    rows = [("feature", *headers)]
    for name in sorted(summary.features):
        t = summary.features[name]
        rows.append((visible(name), *(str(getattr(t, c)) for c in columns)))
    rows.append(("TOTAL", *(str(getattr(summary.total, c)) for c in columns)))
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


def lookup_family(step: object) -> int | None:
    """The family of a step's listener lookup (an injected flow's, a connect()'s), else None."""
    if isinstance(step, FlowStep):
        return step.dst.family
    if isinstance(step, ConnectStep):
        return step.addr.family
    return None


def lookups_line(t: Tally) -> str:
    """Listener lookups of reuseport scenarios by family, exact or by property ("" if none)."""
    parts = []
    for fam, exact, prop in (("IPv4", t.lookups4_exact, t.lookups4_property),
                             ("IPv6", t.lookups6_exact, t.lookups6_property)):
        if exact + prop:
            parts.append(f"{fam} {exact} exact, {prop} by property ({100 * exact / (exact + prop):.1f}% exact)")
    return f"listener lookups where a reuseport hash may pick: {'; '.join(parts)}" if parts else ""


def steps_line(t: Tally) -> str:
    """The run's last line: what was checked, what agreed, what nothing checked."""
    unchecked = f"{t.steps_unchecked} unchecked"
    if t.steps_unchecked:
        unchecked += " (nothing to compare them with: no `= …`, or a random pick)"
    errors = f"; {t.errors} scenario(s) could not finish" if t.errors else ""
    return (f"{t.steps_checked} steps checked: {t.steps_agreed} agreed, {t.steps_diverged} "
            f"diverged; {unchecked}; {t.kernel_steps} kernel steps executed; {t.skipped} "
            f"scenario(s) skipped{errors}")


def divergence_text(result: ScenarioResult, reduction: Reduction | None = None) -> str:
    """How to read it: the step, what each side said (the model with its reason), the problem;
    control characters of the scenario's text shown escaped."""
    return visible(_divergence_text(result, reduction))


def _divergence_text(result: ScenarioResult, reduction: Reduction | None) -> str:
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
    if reduction is not None:
        out.append(f"  {reduction.label}:")
        out += ["    " + ln for ln in reduction.text.splitlines()]
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


def outcome_text(o: dict | None, *, reason: bool = False, sets: bool = False) -> str:
    """An outcome as _outcome_json wrote it, read back for a report: its value, the port it
    picked, with `reason` the model's reason, with `sets` what the model allowed."""
    if o is None:
        return "(not run)"
    text = str(o.get("value"))
    if isinstance(o.get("choice"), int):
        text += f" (picked port {o['choice']})"
    if sets and o.get("one_of"):
        text += f" (one of {', '.join(map(str, o['one_of']))})"
    if sets and o.get("candidates"):
        text += f" (candidates: {o['candidates'].get('ports', '')})"
    if reason and o.get("reason"):
        text += f" -- {o['reason']}"
    return text


def to_json(results: list[ScenarioResult], meta: dict) -> dict:
    """Every step's outcomes, checks and problems; `meta` first (the cli's says whether the
    run was complete)."""
    summary = Summary.of(results)
    runs = _run_numbers(results)
    return {
        **meta,
        "summary": {c: getattr(summary.total, c) for c in JSON_TOTALS},
        "features": {k: {c: getattr(v, c) for c in COLUMNS} for k, v in sorted(summary.features.items())},
        "scenarios": [scenario_json(r, run) for r, run in zip(results, runs, strict=True)],
    }


def scenario_json(r: ScenarioResult, run: int = 1) -> dict:
    """One scenario run as the JSON report holds it: what every other report is made from."""
    return {
        "path": str(r.scenario.path),
        "feature": r.scenario.feature,
        "skipped": r.skipped or None,
        "agreed": r.agreed,
        "checked": r.checked,
        "error": r.error or None,
        "run": run,
        "seconds": round(r.seconds, 4),
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
                "checked": s.checked,
                "unchecked": s.unchecked or None,
                "problems": s.problems,
            }
            for s in r.steps
        ],
        # both outcomes, the model's reason, the minimal (or cut) reproducer: as printed
        "divergence": divergence_text(r, r.reduction) if r.divergent and not r.skipped else None,
    }


def _run_numbers(results: list[ScenarioResult]) -> list[int]:
    """Which run of its scenario each result is (1, 2, … under --repeat)."""
    seen: Counter[str] = Counter()
    out = []
    for r in results:
        seen[str(r.scenario.path)] += 1
        out.append(seen[str(r.scenario.path)])
    return out


def write_json(path: Path, results: list[ScenarioResult], meta: dict) -> None:
    """The JSON report; the folder must exist (checked before the run, see cli)."""
    path.write_text(json.dumps(to_json(results, meta), indent=1) + "\n")


def junit_tree(results: list[ScenarioResult], meta: dict):
    """JUnit XML: one testcase per scenario run (named apart under --repeat) with its time;
    a divergence is a failure, a worker crash an error, a skip or a scenario nothing was
    checked in says why; a run cut short (meta "complete": false) is one more error."""
    import xml.etree.ElementTree as ET

    summary = Summary.of(results).total
    incomplete = meta.get("complete") is False
    seconds = meta.get("seconds", sum(r.seconds for r in results))
    suite = ET.Element("testsuite", name=visible(
        f"sockharness corpus ({meta.get('kernel_release', '?')}, profile {meta.get('profile', '?')})"),
        tests=str(summary.scenarios + incomplete), failures=str(summary.diverged),
        errors=str(summary.errors + incomplete), skipped=str(summary.skipped + summary.unchecked),
        time=f"{seconds:.3f}")
    props = ET.SubElement(suite, "properties")
    for key in ("profile", "kernel_release", "expectations", "backend", "complete", "incomplete"):
        if key in meta:
            value = str(meta[key]).lower() if isinstance(meta[key], bool) else meta[key]
            ET.SubElement(props, "property", name=key, value=visible(value))
    for key in ("steps", "steps_checked", "steps_agreed", "steps_diverged", "steps_unchecked"):
        ET.SubElement(props, "property", name=key, value=str(getattr(summary, key)))
    counts = Counter(str(r.scenario.path) for r in results)
    for r, run in zip(results, _run_numbers(results), strict=True):
        name = str(r.scenario.path)
        if counts[name] > 1:
            name += f" [run {run} of {counts[name]}]"
        case = ET.SubElement(suite, "testcase", classname=visible(r.scenario.feature),
                             name=visible(name), time=f"{r.seconds:.3f}")
        if r.skipped:
            ET.SubElement(case, "skipped", message=visible(r.skipped))
            continue
        if r.error:
            err = ET.SubElement(case, "error", message=visible(r.error.splitlines()[0] if r.error else ""))
            err.text = visible(r.error)
            continue
        if r.divergent:
            first = r.divergent[0]
            fail = ET.SubElement(case, "failure", message=visible(
                f"line {first.step.line}: {first.step.call}: model {_outcome_text(first.model)}; "
                f"kernel {_outcome_text(first.kernel)}"))
            fail.text = divergence_text(r)
        elif not r.checked:
            ET.SubElement(case, "skipped", message=visible(
                f"nothing checked: none of its {len(r.steps)} steps had anything to compare "
                f"with ({r.steps[0].unchecked if r.steps else 'no steps'})"))
        checked = sum(s.checked for s in r.steps)
        ET.SubElement(case, "system-out").text = (
            f"steps: {checked} checked ({checked - len(r.divergent)} agreed, {len(r.divergent)} "
            f"diverged), {len(r.steps) - checked} unchecked")
    if incomplete:
        case = ET.SubElement(suite, "testcase", classname="sockharness", name="run complete", time="0")
        ET.SubElement(case, "error", message=visible(f"run incomplete: {meta.get('incomplete', '')}"))
    return ET.ElementTree(suite)


def write_junit(path: Path, results: list[ScenarioResult], meta: dict) -> None:
    """The JUnit XML report; the folder must exist (checked before the run, see cli)."""
    junit_tree(results, meta).write(path, encoding="utf-8", xml_declaration=True)
