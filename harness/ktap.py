"""KTAP version 1 (Documentation/dev-tools/ktap.rst) for kernel CI: a result per scenario run,
written as it happens, nested by feature folder, ending with kselftest's Totals line.

Made from the per-scenario JSON (report.scenario_json) like every other report. Nesting: one
subtest per feature folder, each with its own version line and plan. 677 results in one flat
list tell a kernel developer nothing about *which* mechanism broke; a feature's own result does
(`not ok 7 groups`), parsers (kunit_parser, KernelCI) read nested KTAP, and kselftest's runner
prefixes our lines with "# " anyway. The indent is 4 spaces per level, as KUnit writes it
(include/kunit/test.h, KUNIT_SUBTEST_INDENT), though ktap.rst's text says two; readers strip it.

A run cut short (Ctrl-C, SIGTERM, a worker crash) still ends as a well-formed document: the
open feature gets its result (`not ok … # ERROR`), the features not reached get none, so the
top-level plan is visibly unmet, and kselftest's "# Planned tests != run tests" line says so.
KTAP v1 has no "Bail out!" (that is TAP13's; kselftest.h's ksft_exit_fail_msg still prints it).
"""

from __future__ import annotations

import enum
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TextIO

from harness.report import outcome_text, visible

VERSION = "KTAP version 1"
INDENT = "    "
NAME = "sockharness"  # the one test of a document that could not start


class KernelColumn(Protocol):
    """What matrix_document reads of a kernel's run (harness.guests.matrix.Column: the core
    does not import harness.guests, tests/unit/test_layers.py)."""

    version: str
    release: str
    profile: str
    problem: str
    missing: list[str]

    def corpus(self) -> dict | None: ...


class Verdict(enum.Enum):
    """A result's kind, as kselftest counts it in its Totals line."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


@dataclass
class Totals:
    """Leaf results (scenario runs, and kernels without any) by verdict; a run cut short
    is one error more."""

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0

    def add(self, v: Verdict | Totals) -> None:
        if isinstance(v, Totals):
            self.passed += v.passed
            self.failed += v.failed
            self.skipped += v.skipped
            self.errors += v.errors
            return
        if v is Verdict.PASS:
            self.passed += 1
        elif v is Verdict.FAIL:
            self.failed += 1
        elif v is Verdict.SKIP:
            self.skipped += 1
        else:
            self.errors += 1

    @property
    def count(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors

    def line(self) -> str:
        """kselftest.h's ksft_print_cnts, byte for byte (we never have xfail or xpass)."""
        return (f"# Totals: pass:{self.passed} fail:{self.failed} xfail:0 xpass:0 "
                f"skip:{self.skipped} error:{self.errors}")


def text(value: object) -> str:
    """One line's worth: control characters escaped (report.visible), newlines too."""
    return visible(value).replace("\n", "\\n")


def description(value: object) -> str:
    """A test's name: ktap.rst says a description cannot include '#', which starts the
    directive, so it is escaped like a control character."""
    return text(value).replace("#", "\\x23")





def verdict(sc: dict) -> tuple[Verdict, str, list[str]]:
    """A scenario run's verdict, the directive part of its result line ("" or "SKIP …",
    "ERROR …") and the diagnostics that go before it."""
    if sc.get("skipped"):
        return Verdict.SKIP, f"SKIP {sc['skipped']}", []
    if sc.get("error"):
        lines = str(sc["error"]).splitlines() or ["(no message)"]
        return Verdict.ERROR, f"ERROR {lines[0]}", lines
    if not sc.get("agreed"):
        diag = []
        bad = [s for s in sc.get("steps", []) if s.get("problems")]
        for s in bad:
            expect = f" = {s['expect']}" if s.get("expect") is not None else ""
            diag.append(f"line {s['line']}: {s['call']}{expect}")
            diag.append(f"  model : {outcome_text(s.get('model'), reason=True)}")
            diag.append(f"  kernel: {outcome_text(s.get('kernel'), reason=True)}")
            diag += [f"  problem: {p}" for p in s["problems"]]
        return Verdict.FAIL, "", diag or ["diverged (no step names a problem)"]
    if not sc.get("checked"):
        steps = sc.get("steps", [])
        why = next((s["unchecked"] for s in steps if s.get("unchecked")), "no steps")
        return Verdict.SKIP, (f"SKIP nothing checked: none of its {len(steps)} steps had "
                              f"anything to compare with ({why})"), []
    return Verdict.PASS, "", []


class KtapWriter:
    """A streaming KTAP document: `plan()` the features (name, scenario runs) in the order
    their results will come, `add()` each scenario JSON, `close()` it. Every line is flushed.
    `depth` nests the whole document (a kernel's corpus under `kernels --ktap`); only a
    top-level document gets the Totals line. A document closed before its plan (a usage
    error) is one failed test with the reason, so CI never reads an empty pass."""

    def __init__(self, out: TextIO, depth: int = 0):
        self.out = out
        self.pad = INDENT * depth
        self.groups: list[tuple[str, int]] | None = None
        self.runs: Mapping[str, int] = {}
        self.totals = Totals()
        self.added = 0  # scenario results written
        self.closed = False
        self._group = -1  # index of the open feature, -1 before the first
        self._in_group = 0  # results written in the open feature
        self._group_totals = Totals()
        self._results = 0  # top-level result lines written

    def _line(self, line: str, extra: str = "") -> None:
        self.out.write(f"{self.pad}{extra}{line}\n")
        self.out.flush()

    def plan(self, groups: list[tuple[str, int]], runs: Mapping[str, int] | None = None,
             notes: Iterable[str] = (), extra: int = 0) -> None:
        """The version line, `notes` as diagnostics, the plan: one test per feature, and
        `extra` tests of the run itself (`error()`). `runs`: how many runs of each path
        there will be (--repeat), to name them apart."""
        self.groups = [(name, n) for name, n in groups if n > 0]
        self.runs = runs or {}
        self._line(VERSION)
        for n in notes:
            self._line(f"# {text(n)}")
        self._line(f"1..{len(self.groups) + extra}")

    def error(self, name: str, reason: str) -> None:
        """A planned `extra` test of the run itself, failed (a report marked incomplete)."""
        self._results += 1
        self.totals.add(Verdict.ERROR)
        self._line(f"not ok {self._results} {description(name)} # ERROR {text(reason)}")

    def add(self, sc: dict) -> None:
        """One scenario run (report.scenario_json) as a result line in its feature."""
        assert self.groups is not None, "plan() first"
        opening = self._group < 0 or self._in_group == self.groups[self._group][1]
        due = self._group + opening
        if due >= len(self.groups):
            raise ValueError(f"{sc['path']}: more results than planned")
        if sc["feature"] != self.groups[due][0]:
            raise ValueError(f"{sc['path']}: feature {sc['feature']!r} where {self.groups[due][0]!r} "
                             "is due (run the scenarios grouped by feature, in plan order)")
        if opening:
            self._open_next()
        v, directive, diag = verdict(sc)
        label = str(sc["path"])
        if self.runs.get(label, 1) > 1:
            label += f" [run {sc.get('run', 1)} of {self.runs[label]}]"
        for d in diag:
            self._line(f"# {text(d)}", INDENT)
        self._in_group += 1
        self.added += 1
        self._group_totals.add(v)
        result = "not ok" if v in (Verdict.FAIL, Verdict.ERROR) else "ok"
        self._line(f"{result} {self._in_group} {description(label)}"
                   + (f" # {text(directive)}" if directive else ""), INDENT)
        if self._in_group == self.groups[self._group][1]:
            self._close_group()

    def _open_next(self) -> None:
        self._group += 1
        name, n = self.groups[self._group]
        self._in_group = 0
        self._group_totals = Totals()
        self._line(VERSION, INDENT)
        self._line(f"# Subtest: {text(name)}", INDENT)
        self._line(f"1..{n}", INDENT)

    def _close_group(self, stopped: str = "") -> None:
        name, n = self.groups[self._group]
        t = self._group_totals
        self.totals.add(t)
        self._results += 1
        head = f"{self._results} {description(name)}"
        if stopped:
            self._line(f"# {text(name)}: {self._in_group} of {n} scenario runs before the run "
                       f"was cut short")
            self._line(f"not ok {head} # ERROR {text(stopped)}")
        elif t.failed or t.errors:
            self._line(f"# {text(name)}: {t.failed} diverged, {t.errors} could not finish, "
                       f"{t.passed} agreed, {t.skipped} skipped")
            self._line(f"not ok {head}")
        elif t.skipped == t.count:
            self._line(f"ok {head} # SKIP all {t.count} scenario runs skipped")
        else:
            self._line(f"ok {head}")

    def close(self, stopped: str = "", notes: Iterable[str] = (), totals: bool | None = None) -> Totals:
        """Finish the document: `stopped` says why a run was cut short (the plan then stays
        unmet, and says so), `notes` are run-level diagnostics (a hash formula that fits no
        secret); kselftest's Totals line ends a top-level document. Idempotent."""
        if self.closed:
            return self.totals
        self.closed = True
        if self.groups is None:  # nothing planned: one test, failed with the reason
            self._line(VERSION)
            self._line("1..1")
            self._line(f"not ok 1 {NAME} # ERROR {text(stopped or 'closed before its plan')}")
            self.totals.add(Verdict.ERROR)
        else:
            open_group = self._group >= 0 and self._in_group < self.groups[self._group][1]
            if open_group:
                self._close_group(stopped or "fewer results than planned")
            for n in notes:
                self._line(f"# {text(n)}")
            planned = sum(n for _, n in self.groups)
            if stopped:  # counted as one error, so Totals alone never reads as a pass
                self._line(f"# run cut short: {text(stopped)}")
                self.totals.add(Verdict.ERROR)
            if self.added != planned:
                self._line(f"# Planned tests != run tests ({planned} != {self.added})")
        if totals if totals is not None else not self.pad:
            self._line(self.totals.line())
        return self.totals


def groups_of(scenarios: Iterable[dict]) -> list[tuple[str, int]]:
    """(feature, runs) in first-appearance order: the plan for these results, grouped."""
    counts: Counter[str] = Counter(sc["feature"] for sc in scenarios)
    return list(counts.items())


def grouped(scenarios: list[dict]) -> list[dict]:
    """The scenario runs reordered by feature (first appearance), each feature's in order."""
    order = {name: i for i, (name, _) in enumerate(groups_of(scenarios))}
    return sorted(scenarios, key=lambda sc: order[sc["feature"]])  # sorted() is stable


def _write_report(w: KtapWriter, report: dict, notes: list[str]) -> None:
    """A finished run's JSON into `w`: a run marked incomplete gets one more failed test,
    "run complete", as the JUnit report does (its plan, unlike a streamed one, is known)."""
    scenarios = grouped(report.get("scenarios", []))
    runs = Counter(str(sc["path"]) for sc in scenarios)
    groups = groups_of(scenarios)
    incomplete = report.get("complete") is False
    w.plan(groups, runs, notes, extra=int(incomplete))
    for sc in scenarios:
        w.add(sc)
    if incomplete:
        w.error("run complete", f"run incomplete: {report.get('incomplete', '')}")
    hash_problem = report.get("hash_problem")
    w.close(notes=[f"DIVERGED {hash_problem}"] if hash_problem else ())


def _meta_notes(report: dict) -> list[str]:
    keys = ("profile", "kernel_release", "backend", "expectations")
    return ["sockharness: " + "; ".join(f"{k} {report[k]}" for k in keys if report.get(k))]


def document(report: dict) -> str:
    """The KTAP document of a finished run (report.to_json, or a `--json` file read)."""
    buf = io.StringIO()
    _write_report(KtapWriter(buf), report, _meta_notes(report))
    return buf.getvalue()


def error_document(reason: str) -> str:
    """A run that could not start (a bad path, not root): one failed test saying why."""
    buf = io.StringIO()
    w = KtapWriter(buf)
    w.close(stopped=reason)
    return buf.getvalue()


def matrix_document(columns: list[KernelColumn]) -> str:
    """`kernels --ktap`: one test per kernel, named with its release and profile, its corpus
    nested (features, then scenarios). A kernel whose corpus did not run is `not ok … #
    ERROR reason`, not SKIP: `kernels` exits 1 for it (exit_status), a boot that broke is
    what CI must see, and a SKIP would let a matrix of unbooted kernels pass."""
    buf = io.StringIO()
    buf.write(f"{VERSION}\n1..{len(columns)}\n")
    totals = Totals()
    for i, c in enumerate(columns, start=1):
        name = description(f"{c.version} (release {c.release or '?'}, profile {c.profile or '?'})")
        report = c.corpus()
        for m in c.missing:
            buf.write(f"# {text(c.version)}: ran without module {text(m)} (found nowhere, not built in)\n")
        if report is None:
            buf.write(f"# {text(c.version)}: no corpus results\n")
            buf.write(f"not ok {i} {name} # ERROR {text(c.problem or 'no corpus results')}\n")
            totals.add(Verdict.ERROR)
            continue
        w = KtapWriter(buf, depth=1)
        _write_report(w, report, [])
        totals.add(w.totals)
        t = w.totals
        if c.problem:
            buf.write(f"not ok {i} {name} # ERROR {text(c.problem)}\n")
        elif t.failed or t.errors:
            buf.write(f"# {text(c.version)}: {t.failed} diverged, {t.errors} could not finish\n")
            buf.write(f"not ok {i} {name}\n")
        elif t.count and t.skipped == t.count:
            buf.write(f"ok {i} {name} # SKIP all {t.count} scenario runs skipped\n")
        else:
            buf.write(f"ok {i} {name}\n")
    buf.write(totals.line() + "\n")
    return buf.getvalue()
