"""KCIDB v5 JSON (kcidb-io's schema, v5.3) of the scenario x kernel matrix: a checkout and a
build per kernel, a test per scenario run, for KernelCI's database (`kcidb-submit`).

Made from each kernel's corpus JSON (report.scenario_json), like every other report. Statuses
follow the schema's definitions ($defs.status): PASS agreed, FAIL diverged, SKIP skipped (not
applicable: `@kernel`, a sysctl the kernel lacks, too few CPUs), DONE ran but nothing in it
could be checked, ERROR the namespace worker failed in it; a kernel whose corpus did not run,
or stopped short, has one more test, `sockharness`, with MISS ("didn't run due to a failure
in the test harness": a boot, a timeout, a signal) and the reason. Its build is PASS only
if the corpus ran (the kernel booted); sockharness builds nothing, so otherwise it is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from harness.report import visible

ORIGIN = "sockharness"
SCHEMA_VERSION = {"major": 5, "minor": 3}
LOG_EXCERPT_MAX = 16384  # $defs.test.properties.log_excerpt.maxLength
_PATH_PART = re.compile(r"[^a-zA-Z0-9_-]")  # $defs.path: dot-separated [a-zA-Z0-9_-]+
ORIGIN_PATTERN = re.compile(r"[a-z0-9_]+")  # $defs.*.origin, and every id's part before the colon


class KernelColumn(Protocol):
    """What the document reads of a kernel's run (harness.guests.matrix.Column; the core does
    not import harness.guests, tests/unit/test_layers.py)."""

    version: str
    release: str
    profile: str
    seconds: float
    problem: str

    def corpus(self) -> dict | None: ...


def test_path(feature: str, scenario: str) -> str:
    """`sockharness.<feature>.<file name without .scn>`, each part in the schema's alphabet."""
    name = scenario.rsplit("/", 1)[-1].removesuffix(".scn")
    return ".".join([ORIGIN, *(_PATH_PART.sub("_", p) or "_" for p in (feature, name))])


def _status(sc: dict) -> str:
    if sc.get("skipped"):
        return "SKIP"
    if sc.get("error"):
        return "ERROR"
    if not sc["agreed"]:
        return "FAIL"
    return "PASS" if sc["checked"] else "DONE"


def _excerpt(sc: dict) -> str:
    """The divergence as `run` prints it (both outcomes, the reason, the reproducer), the
    skip reason, or the worker's error; cut to the schema's limit."""
    text = sc.get("divergence") or sc.get("error") or sc.get("skipped") or ""
    if not text and not sc["agreed"]:
        text = "\n".join(f"line {s['line']}: {s['call']}: " + "; ".join(s["problems"])
                         for s in sc["steps"] if s["problems"])
    return _cut(text)


def _cut(text: str) -> str:
    """A log excerpt the schema takes: no NUL (every string's pattern), at most
    LOG_EXCERPT_MAX characters (counted as code points, as jsonschema does)."""
    text = text.replace("\0", "\\x00")
    if len(text) > LOG_EXCERPT_MAX:
        cut = "\n… (cut: the corpus JSON has it all)"
        text = text[:LOG_EXCERPT_MAX - len(cut)] + cut
    return text


def _kernel_id(origin: str, run: str, version: str) -> str:
    return f"{origin}:{run}/{version}"


def document(columns: Iterable[KernelColumn], *, run: str, started: datetime,
             origin: str = ORIGIN) -> dict:
    """The KCIDB document. `run` names this matrix run (ids are `origin:run/kernel[/scenario
    #k]`, unique per submission as KCIDB asks); `started` (timezone-aware) is every object's
    start_time: both passed in, so the same inputs give the same document. A build is PASS when
    its kernel ran the corpus (it booted); otherwise its status is left out: unknown."""
    if started.utcoffset() is None:  # isoformat() would have no offset: not an RFC 3339 date-time
        raise ValueError(f"started must be timezone-aware, not {started!r}")
    if not ORIGIN_PATTERN.fullmatch(origin):
        raise ValueError(f"origin {origin!r} is not [a-z0-9_]+ (KCIDB's schema)")
    when = started.isoformat()
    checkouts, builds, tests = [], [], []
    for c in columns:
        kid = _kernel_id(origin, run, c.version)
        linux = f"Linux {c.release or '(unknown release)'}"
        corpus = c.corpus()
        checkouts.append({"id": kid, "origin": origin, "tree_name": c.version, "valid": True,
                          "start_time": when, "comment": linux,
                          "misc": {"kernel": c.version, "release": c.release}})
        build = {"id": kid, "checkout_id": kid, "origin": origin, "architecture": "x86_64",
                 "config_name": c.version, "start_time": when,
                 "comment": f"{linux}: the kernel image as given (sockharness builds none)"}
        if corpus is not None:
            build["status"] = "PASS"
        builds.append(build)
        environment = {"comment": f"{linux} ({c.version}), model profile {c.profile or '(none)'}",
                       "misc": {"kernel": c.version, "release": c.release, "profile": c.profile}}
        for sc in corpus["scenarios"] if corpus else ():
            steps = sc["steps"]
            test = {"id": f"{kid}/{sc['path']}#{sc.get('run', 1)}", "build_id": kid, "origin": origin,
                    "path": test_path(sc["feature"], sc["path"]), "status": _status(sc),
                    "comment": visible(sc["path"]), "start_time": when,  # misc has it as is
                    "duration": float(sc.get("seconds", 0.0)), "environment": environment,
                    "misc": {"scenario": sc["path"], "run": sc.get("run", 1), "steps": len(steps),
                             "checked": sum(bool(s["checked"]) for s in steps),
                             "exact": sum("exact" in s["checks"] for s in steps),
                             "property": sum("property" in s["checks"] for s in steps)}}
            excerpt = _excerpt(sc)
            if excerpt:
                test["log_excerpt"] = excerpt
            tests.append(test)
        problem = c.problem or ("" if corpus else "no corpus results")
        if problem:
            tests.append({"id": f"{kid}/{ORIGIN}", "build_id": kid, "origin": origin, "path": ORIGIN,
                          "status": "MISS", "comment": f"the corpus on {c.version}",
                          "start_time": when, "duration": float(c.seconds),
                          "environment": environment, "log_excerpt": _cut(problem)})
    return {"version": dict(SCHEMA_VERSION), "checkouts": checkouts, "builds": builds, "tests": tests}
