"""The scenario x kernel matrix: each cell agree / diverge / skipped, as Markdown (HTML:
harness/html_report.py).

Built from each guest's corpus JSON (`sockharness run --json`); a kernel that did not boot or
whose corpus did not finish gives "not run" cells with the reason. Which profile fields each
kernel exercised is computed on the model alone (`exercised`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from harness.model_backend import ModelExecutor
from harness.report import outcome_text
from harness.scenario import Scenario
from model.profiles import Profile, with_fields


class Status(Enum):
    AGREE = "agree"
    DIVERGE = "diverge"
    SKIPPED = "skipped"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Cell:
    status: Status
    detail: str = ""  # the divergent step with both outcomes, or why it was skipped / not run


@dataclass
class Column:
    """One kernel's run: its release, profile, timings and cells by scenario path."""

    version: str
    release: str = ""
    profile: str = ""
    seconds: float = 0.0
    problem: str = ""  # why the corpus has no result (boot failure, timeout)
    cells: dict[str, Cell] = field(default_factory=dict)
    exercised: dict[str, list[str]] = field(default_factory=dict)  # field -> scenarios
    kernel_tests: str = ""  # the kernel tests' summary line, if they ran
    soak: str = ""  # the soak's last line (harness/soak.py), if it ran
    probe: str = ""  # the probe's verdict on the profile it inferred with this one withheld
    swap_profile: str = ""  # the other profile the exercised scenarios were rerun under
    swapped: dict[str, Cell] = field(default_factory=dict)  # their cells under it
    missing: list[str] = field(default_factory=list)  # modules the guest wanted and lacked
    report: Path | None = None  # its corpus JSON (`run --json`), if the corpus ran

    def corpus(self) -> dict | None:
        """Its corpus JSON, read: what the KTAP, KCIDB and HTML reports are made from."""
        return json.loads(self.report.read_text()) if self.report is not None else None

    @property
    def soak_failed(self) -> bool:
        return bool(self.soak) and not self.soak.startswith("soak passed")

    def count(self, status: Status) -> int:
        return sum(c.status is status for c in self.cells.values())


def cells_from_json(path: Path) -> tuple[dict[str, Cell], dict]:
    """Cells of one corpus JSON, and its metadata."""
    data = json.loads(path.read_text())
    cells: dict[str, Cell] = {}
    for sc in data["scenarios"]:
        if sc["skipped"]:
            cells[sc["path"]] = Cell(Status.SKIPPED, sc["skipped"])
        elif sc.get("error"):  # the namespace worker failed in it: the run stopped there
            cells[sc["path"]] = Cell(Status.NOT_RUN, sc["error"].splitlines()[0])
        elif sc["agreed"]:
            cells[sc["path"]] = Cell(Status.AGREE)
        else:
            bad = next(s for s in sc["steps"] if s["problems"])
            cells[sc["path"]] = Cell(Status.DIVERGE, (
                f"line {bad['line']}: {bad['call']}: model {outcome_text(bad['model'])}, "
                f"kernel {outcome_text(bad['kernel'])}"))
    return cells, {k: v for k, v in data.items() if k not in ("scenarios", "features")}


# A fixed hash secret for the model-only runs: reuseport picks are then exact, so a field that
# changes a pick shows. The hash formula itself (ehash_lport_outside) would change every pick
# under one secret: it is checked on each kernel by tests/kernel/test_hash_formula.py instead.
SECRET = 0x1234ABCD
_NOT_FLIPPED = ("name", "version", "sysctls", "ehash_lport_outside")


def differing(profile: Profile, reference: Profile) -> Iterable[tuple[str, object]]:
    """(field, reference's value) for each field where they differ ("bind.x" for bind rules),
    but for _NOT_FLIPPED."""
    for f in dataclasses.fields(profile):
        if f.name in _NOT_FLIPPED:
            continue
        mine, theirs = getattr(profile, f.name), getattr(reference, f.name)
        if f.name == "bind":
            for g in dataclasses.fields(mine):
                if getattr(mine, g.name) != getattr(theirs, g.name):
                    yield f"bind.{g.name}", getattr(theirs, g.name)
        elif mine != theirs:
            yield f.name, theirs


def _flips(profile: Profile, reference: Profile) -> Iterable[tuple[str, Profile]]:
    """`profile` with one field at a time set to `reference`'s value, where they differ."""
    for name, value in differing(profile, reference):
        yield name, with_fields(profile, {name: str(value)})


def _values(outcomes) -> list[str]:
    return [f"{o.value}|{o.choice}" for o in outcomes]


def exercised(profile: Profile, reference: Profile, scenarios: list[Scenario]) -> dict[str, list[str]]:
    """For each field where `profile` differs from `reference`: the scenarios whose model
    outcome changes when that one field takes the reference's value (model only, seed 0)."""
    base = {s.path: _values(ModelExecutor(profile, 0, SECRET).run(s)) for s in scenarios}
    out: dict[str, list[str]] = {}
    for name, flipped in _flips(profile, reference):
        out[name] = [str(s.path) for s in scenarios
                     if _values(ModelExecutor(flipped, 0, SECRET).run(s)) != base[s.path]]
    return out


def markdown(columns: list[Column], *, full: bool) -> str:
    """The matrix as Markdown: totals per kernel, then the rows (all, or those not agreeing
    everywhere), then the profile fields each kernel exercised."""
    out = ["| kernel | release | profile | agree | diverge | skipped | not run | time |",
           "|---|---|---|---:|---:|---:|---:|---:|"]
    for c in columns:
        out.append(f"| {c.version} | {c.release or '-'} | {c.profile or '-'} | "
                   f"{c.count(Status.AGREE)} | {c.count(Status.DIVERGE)} | {c.count(Status.SKIPPED)} "
                   f"| {c.count(Status.NOT_RUN)} | {c.seconds:.0f} s |")
    problems = [f"- {c.version}: {c.problem}" for c in columns if c.problem]
    problems += [f"- {c.version}: ran without module(s) {', '.join(c.missing)} (found nowhere, "
                 "not built in)" for c in columns if c.missing]
    if problems:
        out += ["", *problems]
    paths = sorted({p for c in columns for p in c.cells})
    rows = [p for p in paths if full or any(c.cells.get(p, Cell(Status.NOT_RUN)).status is not Status.AGREE
                                             for c in columns)]
    out += ["", f"| scenario | {' | '.join(c.version for c in columns)} |",
            "|---|" + "---|" * len(columns)]
    details = []
    for p in rows:
        marks = []
        for c in columns:
            cell = c.cells.get(p, Cell(Status.NOT_RUN, c.problem))
            marks.append(cell.status.value)
            if cell.status is Status.DIVERGE or (cell.status is Status.SKIPPED and full):
                details.append(f"- `{p}` on {c.version}: {cell.detail}")
        out.append(f"| {p} | {' | '.join(marks)} |")
    if not rows:
        out.append(f"| (all {len(paths)} scenarios agree on every kernel) |" + " |" * len(columns))
    if details:
        out += ["", *details]
    out += ["", "Profile fields exercised: for each field where the kernel's profile differs "
            "from the other profile named, the scenarios whose model outcome changes with the "
            "other's value; in brackets, how many of those diverge from this kernel when the "
            "model runs with the other profile's values of these fields (its hash formula "
            "kept: tests/kernel/test_hash_formula.py checks that one): the end-to-end check "
            "that the field matters.", ""]
    for c in columns:
        if not c.exercised:
            out.append(f"- {c.version}: no field differs from the reference profile")
            continue
        parts = []
        for k, v in c.exercised.items():
            text = f"`{k}` {len(v)}"
            if c.swapped and v:
                bad = sum(c.swapped.get(p, Cell(Status.NOT_RUN)).status is Status.DIVERGE for p in v)
                text += f" ({bad} diverge with {c.swap_profile})"
            parts.append(text)
        out.append(f"- {c.version} (against {c.swap_profile or 'the reference'}): " + ", ".join(parts))
    soaked = [c for c in columns if c.soak]
    if soaked:
        out += ["", "Soak in each guest (`python -m harness.soak`):", ""]
        out += [f"- {c.version}: {c.soak}" for c in soaked]
    tested = [c for c in columns if c.kernel_tests or c.probe]
    if tested:
        out += ["", "Kernel tests in each guest, and the profile probe with the kernel's own "
                "profile withheld (`profiles --probe --withhold`):", ""]
        out += [f"- {c.version}: kernel tests {c.kernel_tests or '(not run)'}; probe: "
                f"{c.probe or '(not run)'}" for c in tested]
    return "\n".join(out) + "\n"
