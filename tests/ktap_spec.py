"""A KTAP version 1 validator (Documentation/dev-tools/ktap.rst), independent of harness/ktap.py:
what the tests hold the writer's output (and the kselftest entry point's) to.

Checked: the version line first at each level; the plan `1..N` after it, before any result,
and N equal to the results at that level; result lines `(ok|not ok) N[ -][ description][ #
directive]`, numbered from 1 by 1; a description without '#'; a known directive (SKIP, TODO,
XFAIL, TIMEOUT, ERROR; "not ok" with TIMEOUT and ERROR); nesting by `indent` spaces (ktap.rst
says 2, KUnit writes 4), each subtest opened by its own version line and closed by its
parent's result line, which fails when a subtest failed. In strict mode (our own output) a
line that is none of version, plan, result, diagnostic is a problem too; the spec allows them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

DIRECTIVES = {"SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR"}
_RESULT = re.compile(r"(ok|not ok) ([0-9]+)(?: - | |$)([^#]*?)\s*(?:#\s*(.*))?$")
_PLAN = re.compile(r"1\.\.([0-9]+)(\s*#.*)?$")
_VERSION = re.compile(r"(KTAP version 1|TAP version 1[34])$")


class Kind(enum.Enum):
    VERSION = "version"  # no version line where a document or subtest starts
    PLAN = "plan"  # missing, misplaced or malformed plan
    PLAN_UNMET = "plan unmet"  # the plan's count differs from the results (a run cut short)
    RESULT = "result"  # a malformed result line
    NUMBER = "number"  # not numbered 1, 2, 3 …
    DIRECTIVE = "directive"  # unknown, or with the wrong result
    NESTING = "nesting"  # wrong indentation, a subtest without its parent's result
    BUBBLE = "bubble"  # a parent ok while one of its subtests failed
    UNKNOWN = "unknown"  # (strict) a line of no KTAP kind


@dataclass(frozen=True)
class Problem:
    line: int  # 1-based
    kind: Kind
    text: str


@dataclass
class Test:
    number: int
    ok: bool
    description: str
    directive: str  # "SKIP", "ERROR", … or ""
    diagnostic: str  # after the directive
    subtests: list[Test] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Failed as a parent sees it: not ok and not skipped."""
        return not self.ok and self.directive != "SKIP"


@dataclass
class Document:
    plan: int | None
    tests: list[Test]
    problems: list[Problem]

    def leaves(self) -> list[Test]:
        out: list[Test] = []

        def walk(tests: list[Test]) -> None:
            for t in tests:
                if t.subtests:
                    walk(t.subtests)
                else:
                    out.append(t)
        walk(self.tests)
        return out


class _Parser:
    def __init__(self, text: str, indent: int, strict: bool):
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.i = 0
        self.unit = indent
        self.strict = strict
        self.problems: list[Problem] = []

    def problem(self, kind: Kind, text: str, at: int | None = None) -> None:
        self.problems.append(Problem((self.i if at is None else at) + 1, kind, text))

    @staticmethod
    def split(line: str) -> tuple[int, str]:
        body = line.lstrip(" ")
        return len(line) - len(body), body

    def level(self, depth: int) -> tuple[int | None, list[Test]]:
        """One document or subtest whose version line is at self.i, `depth` levels deep."""
        want = depth * self.unit
        ind, body = self.split(self.lines[self.i])
        if ind != want or not _VERSION.match(body):
            self.problem(Kind.VERSION, f"expected a version line at indent {want}, got {self.lines[self.i]!r}")
        elif body != "KTAP version 1":
            self.problem(Kind.VERSION, f"{body!r}: not KTAP version 1")
        self.i += 1
        plan: int | None = None
        tests: list[Test] = []
        pending: list[Test] | None = None  # a subtest's results, waiting for their parent's line
        while self.i < len(self.lines):
            line = self.lines[self.i]
            ind, body = self.split(line)
            if not body:
                if self.strict:
                    self.problem(Kind.UNKNOWN, "an empty line")
                self.i += 1
                continue
            if body.startswith("#"):
                if ind < want:
                    break  # a diagnostic of the parent
                self.i += 1
                continue
            if ind < want:
                break
            if ind > want:
                if ind == want + self.unit and _VERSION.match(body):
                    if pending is not None:
                        self.problem(Kind.NESTING, "a subtest follows a subtest without its parent's result")
                    if plan is None:
                        self.problem(Kind.PLAN, "a subtest before its parent's plan")
                    start = self.i
                    sub_plan, sub = self.level(depth + 1)
                    self._check_plan(sub_plan, sub, start)
                    pending = sub
                    continue
                self.problem(Kind.NESTING, f"indent {ind} where {want} (or a subtest's version line) is due")
                self.i += 1
                continue
            if _VERSION.match(body):
                self.problem(Kind.VERSION, "a second version line at the same level")
                self.i += 1
                continue
            m = _PLAN.match(body)
            if m:
                if plan is not None or tests:
                    self.problem(Kind.PLAN, "a plan after the plan or after results")
                plan = int(m.group(1))
                self.i += 1
                continue
            if body.startswith(("ok", "not ok")):
                t = self._result(body, len(tests) + 1)
                if t is not None:
                    if plan is None:
                        self.problem(Kind.PLAN, "a result before the plan")
                    if pending is not None:
                        t.subtests = pending
                        if any(s.failed for s in pending) and t.ok:
                            self.problem(Kind.BUBBLE, f"{t.description!r} is ok but a subtest failed")
                        pending = None
                    tests.append(t)
                self.i += 1
                continue
            if self.strict:
                self.problem(Kind.UNKNOWN, f"not a KTAP line: {line!r}")
            self.i += 1
        if pending is not None:
            self.problem(Kind.NESTING, "a subtest without its parent's result line")
        return plan, tests

    def _result(self, body: str, number: int) -> Test | None:
        m = _RESULT.match(body)
        if not m:
            self.problem(Kind.RESULT, f"malformed result line {body!r}")
            return None
        ok, n, desc, rest = m.group(1) == "ok", int(m.group(2)), m.group(3), m.group(4)
        hash_at = body.find("#")
        if hash_at > 0 and body[hash_at - 1] != " ":
            self.problem(Kind.RESULT, f"a '#' inside the description of {body!r} (ktap.rst: it cannot include #)")
        if n != number:
            self.problem(Kind.NUMBER, f"result numbered {n} where {number} is due")
        directive, diagnostic = "", rest or ""
        if rest:
            word, _, tail = rest.partition(" ")
            if word.upper() in DIRECTIVES:
                directive, diagnostic = word.upper(), tail
            elif word.isupper() and word.isalpha():
                self.problem(Kind.DIRECTIVE, f"unknown directive {word!r}")
        if directive in ("TIMEOUT", "ERROR") and ok:
            self.problem(Kind.DIRECTIVE, f"'ok' with {directive} (ktap.rst: should be 'not ok')")
        return Test(n, ok, desc, directive, diagnostic)

    def _check_plan(self, plan: int | None, tests: list[Test], at: int) -> None:
        if plan is None:
            self.problem(Kind.PLAN, "no plan", at)
        elif plan != len(tests):
            self.problem(Kind.PLAN_UNMET, f"plan 1..{plan} but {len(tests)} result(s)", at)


def parse(text: str, indent: int = 4, strict: bool = True) -> Document:
    """The document's tree and every problem found in it."""
    p = _Parser(text, indent, strict)
    while p.i < len(p.lines) and not p.lines[p.i].strip():
        p.i += 1
    if p.i >= len(p.lines):
        return Document(None, [], [Problem(1, Kind.VERSION, "empty document")])
    first = p.split(p.lines[p.i])[1]
    if not _VERSION.match(first) or p.split(p.lines[p.i])[0]:
        p.problem(Kind.VERSION, f"the document does not begin with a version line: {p.lines[p.i]!r}")
        return Document(None, [], p.problems)
    plan, tests = p.level(0)
    p._check_plan(plan, tests, 0)
    if p.i < len(p.lines):
        p.problem(Kind.NESTING, f"lines after the document: {p.lines[p.i]!r}")
    return Document(plan, tests, p.problems)


def validate(text: str, indent: int = 4, strict: bool = True) -> list[Problem]:
    """Every problem of a KTAP v1 document; [] when it is valid."""
    return parse(text, indent, strict).problems


TOTALS = re.compile(r"^# Totals: pass:(\d+) fail:(\d+) xfail:(\d+) xpass:(\d+) skip:(\d+) error:(\d+)$",
                    re.MULTILINE)


def totals(text: str) -> dict[str, int] | None:
    """kselftest's Totals line, if the document has one (the last)."""
    found = TOTALS.findall(text)
    if not found:
        return None
    keys = ("pass", "fail", "xfail", "xpass", "skip", "error")
    return dict(zip(keys, map(int, found[-1]), strict=True))
