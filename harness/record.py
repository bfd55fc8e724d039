"""`record`: write a kernel's outcomes into scenario files as that kernel version's expectations:
the bare `= …` on the default's kernel (DEFAULT_SPEC), a version clause `[5.10: …]` on others."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare import ScenarioResult
from harness.parser import ScenarioError, call_end, parse_file
from harness.scenario import (
    DEFAULT_SPEC,
    UNCHECKED,
    Scenario,
    Step,
    Version,
    VersionClause,
    VersionSpan,
    version_text,
)
from model.profiles import PROFILES, RELEASE_PROFILES, parse_release

# line -> (the kernel's value, whether it came from a random pick) on the recorded kernel
Observed = dict[int, "tuple[str, bool]"]


@dataclass
class KernelRun:
    """One kernel's outcomes of some scenarios, as `record` takes them: from a live run or from
    a `run --json` report (a `sockharness kernels` guest's corpus.json)."""

    version: Version
    label: str  # the kernel release, for messages
    observed: dict[Path, Observed] = field(default_factory=dict)
    calls: dict[Path, dict[int, str]] = field(default_factory=dict)  # a report's step text by line
    refused: dict[Path, list[str]] = field(default_factory=dict)  # model != kernel: findings
    skipped: dict[Path, str] = field(default_factory=dict)


def _observe(steps: list[tuple[int, str | None, bool, str | None]]) -> tuple[Observed, list[str]]:
    """(line, kernel value, model random, model value) -> what to record, or the findings that
    forbid it (a value where the model and the kernel disagree is a finding, not a spec)."""
    observed: Observed = {}
    findings = []
    for line, kernel, random, model in steps:
        if kernel is None:
            continue
        if model is not None and model != kernel:
            findings.append(f"line {line}: model {model} != kernel {kernel}")
        observed[line] = (kernel, random)
    return observed, findings


def add_result(run: KernelRun, r: ScenarioResult) -> None:
    path = Path(r.scenario.path)
    if r.skipped:
        run.skipped[path] = r.skipped
        return
    steps = [(s.step.line, s.kernel.value if s.kernel else None, bool(s.model and s.model.random),
              s.model.value if s.model else None) for s in r.steps]
    # other problems than the files' expectations (a port outside the model's set) forbid it too
    bad = [f"line {s.step.line}: {p}" for s in r.steps for p in s.problems
           if not p.startswith("kernel ") or " != expected" not in p]
    _keep(run, path, steps, bad)


def _keep(run: KernelRun, path: Path, steps, bad: list[str]) -> None:
    observed, findings = _observe(steps)
    findings += [b for b in bad if b not in findings]
    if findings:
        run.refused[path] = findings
    else:
        run.observed[path] = observed


def from_json(report: Path) -> KernelRun:
    """A `run --json` report as a KernelRun; its profile must be the kernel version's own."""
    try:
        data = json.loads(report.read_text())
        release, name = data["kernel_release"], data["profile"]
        version = parse_release(release)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ScenarioError(report, 0, 0, f"not a `sockharness run --json` report: {e}") from None
    profile = PROFILES.get(name)
    if profile is None or profile.version != version or data.get("backend") != "both":
        raise ScenarioError(report, 0, 0, f"ran under profile {name!r} on {release} "
                            f"(backend {data.get('backend')}); recording needs a run on both "
                            "backends under the kernel's own profile")
    run = KernelRun(version, release)
    try:
        _read_scenarios(run, data["scenarios"])
    except (KeyError, TypeError, ValueError) as e:
        raise ScenarioError(report, 0, 0, f"not a `sockharness run --json` report: {e!r}") from None
    return run


def _read_scenarios(run: KernelRun, scenarios: list) -> None:
    for sc in scenarios:
        path = Path(sc["path"])
        if sc["skipped"] or sc.get("error"):  # error: the worker failed in it (no outcomes)
            run.skipped[path] = sc["skipped"] or sc["error"].splitlines()[0]
            continue
        steps = []
        bad = []
        run.calls[path] = {s["line"]: s["call"] for s in sc["steps"] if "call" in s}
        for s in sc["steps"]:
            k, m = s.get("kernel"), s.get("model")
            steps.append((s["line"], k["value"] if k else None, bool(m and m.get("random")),
                          m["value"] if m else None))
            bad += [f"line {s['line']}: {p}" for p in s["problems"]
                    if not p.startswith("kernel ") or " != expected" not in p]
        _keep(run, path, steps, bad)


def _versions(step: Step) -> dict[Version, str]:
    """The step's clauses as version -> value over the versions with a profile."""
    from harness.parser import KNOWN_VERSIONS

    return {v: c.value for c in step.versions for v in sorted(KNOWN_VERSIONS) if c.covers(v)}


def render(default: str | None, versions: dict[Version, str]) -> str:
    """` = default [5.10, 6.1: X] [6.12: Y]`: the clauses list their versions (a range would
    claim the versions between that no kernel recorded), lowest first; none repeats the default."""
    by_value: dict[str, list[Version]] = {}
    for v in sorted(versions):
        if versions[v] != default:
            by_value.setdefault(versions[v], []).append(v)
    text = f" = {default}" if default is not None else ""
    for value, vs in by_value.items():
        clause = VersionClause(tuple(VersionSpan(v, v) for v in vs), value)
        text += ("   " if not text.endswith("]") else " ") + str(clause)
    return text


def rewrite_line(raw: str, tail: str) -> str:
    """The line with everything after the call replaced by `tail`; the comment kept."""
    body, hash_, comment = raw.partition("#")
    end = call_end(body)
    if end is None:
        return raw
    new = body[:end].rstrip() + tail
    if hash_:
        col = len(body)  # the comment stays in its column when there is room
        new = (new.ljust(col) if len(new) + 1 < col else new + "  ") + "#" + comment
    return new



def recorded_text(scenario: Scenario, observed: Observed, version: Version,
                  default_random: frozenset[int] = frozenset()) -> str:
    """The scenario's source with `version`'s observed values written in. `default_random`:
    the lines whose value is a random pick on the default's kernel too (the model says so)."""
    lines = list(scenario.lines)
    tainted = False  # a random pick that is fixed on the default's kernel shaped what follows
    for step in scenario.steps:
        if step.line not in observed:
            continue
        value, random = observed[step.line]
        default, versions = step.expect, _versions(step)
        if version != DEFAULT_SPEC and versions.get(version) == UNCHECKED:
            # an earlier run of this kernel saw a random pick here or before: one run that did
            # not cannot show the value is fixed, so the `*` stays (remove it by hand)
            tainted = True
            continue
        if version != DEFAULT_SPEC and random and step.line not in default_random:
            tainted = True
        if version != DEFAULT_SPEC and tainted and not step.VERB.fixed:
            if default is None:
                continue  # nothing to say on this kernel either
            value = UNCHECKED  # on this kernel it follows a random pick: the default is no spec
        elif random:  # random here as on the default's kernel
            if version == DEFAULT_SPEC or default is None or value == default:
                continue  # what is written stays
            value = UNCHECKED
        if version == DEFAULT_SPEC:
            default = value
        elif value == default:
            versions.pop(version, None)
        else:
            versions[version] = value
        lines[step.line - 1] = rewrite_line(lines[step.line - 1], render(default, versions))
    return "\n".join(lines) + "\n"


def _changed_since(scenario: Scenario, calls: dict[int, str] | None) -> str:
    """How the file's steps differ from those a report ran ("" if they do not, or if the run
    was live): its values go by line, so a step added or moved would take another's."""
    if not calls:
        return ""
    now = {s.line: s.call for s in scenario.steps}
    for line in sorted(calls):
        if now.get(line) != calls[line]:
            return f"line {line} was {calls[line]!r}, is {now.get(line, 'no step')!r}"
    return ""


def default_random(scenario: Scenario) -> frozenset[int]:
    """Lines the model says are a random pick under the default's profile (model only: this
    decides what not to check, never a value)."""
    from harness.model_backend import ModelExecutor

    profile = next(p for p in RELEASE_PROFILES if p.version == DEFAULT_SPEC)
    return frozenset(s.line for s, o in zip(scenario.steps, ModelExecutor(profile).run(scenario),
                                            strict=True) if o.random)


def write(run: KernelRun, only: set[Path] | None, say) -> int:
    """Write `run` into the files it observed (those in `only`, if given); 1 if any was refused."""
    status = unchanged = 0
    label = version_text(run.version)
    for path in sorted(run.skipped):
        if only is None or path.resolve() in only:
            say(f"{path}: skipped on {run.label} ({run.skipped[path]}); not recorded")
    for path, findings in sorted(run.refused.items()):
        if only is None or path.resolve() in only:
            status = 1
            say(f"{path}: NOT recorded for {label}: the model and {run.label} disagree")
            for f in findings:
                say(f"  {f}")
    for path, observed in sorted(run.observed.items()):
        if only is not None and path.resolve() not in only:
            continue
        scenario = parse_file(path)
        moved = _changed_since(scenario, run.calls.get(path))
        if moved:
            status = 1
            say(f"{path}: NOT recorded for {label}: the file changed since the run ({moved}); "
                "run it again")
            continue
        text = recorded_text(scenario, observed, run.version, default_random(scenario))
        changed = sum(a != b for a, b in zip(text.splitlines(), scenario.lines, strict=True))
        if changed:
            path.write_text(text)
            say(f"{path}: {changed} of {len(observed)} steps' expectations for {label} written")
        else:
            unchanged += 1
    say(f"{run.label} ({label}): {len(run.observed) - unchanged} file(s) written, {unchanged} "
        f"already recorded, {len(run.refused)} refused, {len(run.skipped)} skipped")
    return status
