"""Runs and matrices for the HTML report tests: made by the model and compare (no root), with
the kernel's outcomes made up where a test needs a divergence."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from harness.compare import ScenarioResult, compare
from harness.guests import matrix
from harness.model_backend import ModelExecutor
from harness.parser import parse_text
from harness.report import to_json
from model.profiles import LINUX_6_18

SECRET = 0x1234ABCD  # exact reuseport picks: the model computes every hash
REASON_MARK = "inet_csk_bind_conflict"  # in the divergent step's model reason

GROUP = """s0 = socket(AF_INET, SOCK_STREAM) = 0
setsockopt(s0, SO_REUSEPORT, 1) = 0
bind(s0, 0.0.0.0:8080) = 0
s1 = socket(AF_INET, SOCK_STREAM) = 0
setsockopt(s1, SO_REUSEPORT, 1) = 0
bind(s1, 0.0.0.0:8080) = 0
s2 = socket(AF_INET, SOCK_STREAM) = 0
setsockopt(s2, SO_REUSEPORT, 1) = 0
bind(s2, 0.0.0.0:8080) = 0
listen(s0, 4096) = 0
listen(s1, 4096) = 0
listen(s2, 4096) = 0
""" + "".join(f"syn(198.18.{i}.{i * 7 % 250 + 1}:{20000 + i} > 10.0.0.1:8080)\n" for i in range(40))

CONFLICT = """# a bell \x07 in a comment
a = socket(AF_INET, SOCK_STREAM) = 0
bind(a, 10.0.0.1:8080) = 0
listen(a, 5) = 0
b = socket(AF_INET, SOCK_STREAM) = 0
bind(b, 10.0.0.1:8080) = EADDRINUSE
"""

AGREE = "a = socket(AF_INET, SOCK_STREAM) = 0\nbind(a, 10.0.0.1:80) = 0\n"


def both(path: str, text: str, change: dict[int, str] | None = None, secret: int | None = SECRET) -> ScenarioResult:
    """A run on 'both backends' whose kernel said what the model said, but at the steps
    (index -> value) in `change`."""
    sc = parse_text(Path(path), text)
    model = ModelExecutor(LINUX_6_18, 0, secret).run(sc)
    kernel = [dataclasses.replace(o, reason="", choice=o.value if o.one_of or o.random else o.choice,
                                  one_of=(), candidates=None, random=False) for o in model]
    for i, value in (change or {}).items():
        kernel[i] = dataclasses.replace(kernel[i], value=value, choice=value)
    return compare(sc, model, kernel, None)


def run_report() -> dict:
    """A run with a divergence (a bind the kernel allowed), a divergent reuseport pick, a
    skip, agreeing scenarios and a group checked by property only."""
    diverged = both("tests/scenarios/bind/conflict\x1b.scn", CONFLICT, {4: "0"})
    first = both("tests/scenarios/groups/three.scn", GROUP).steps[12].model.value  # the first SYN
    pick = both("tests/scenarios/groups/three.scn", GROUP, {12: "s1" if first != "s1" else "s2"})
    unseeded = both("tests/scenarios/lookup/property.scn", GROUP, secret=None)
    skipped = ScenarioResult(parse_text(Path("tests/scenarios/versions/old.scn"), AGREE),
                             skipped="@kernel < 5.0 excludes profile 6.18")
    agreed = [both(f"tests/scenarios/bind/ok{i}.scn", AGREE) for i in range(3)]
    meta = {"profile": "6.18", "kernel_release": "6.18.0-test", "backend": "both",
            "expectations": "none", "complete": True, "seconds": 1.5}
    return to_json([diverged, pick, unseeded, skipped, *agreed], meta)


def write_run(folder: Path) -> Path:
    path = folder / "run.json"
    path.write_text(json.dumps(run_report()))
    return path


def matrix_columns(folder: Path) -> list[matrix.Column]:
    """Three kernels: one divergent scenario on 5.10 (its corpus JSON on disk), one skipped
    on 6.1, one that did not boot."""
    corpus = write_run(folder)
    cells = {f"tests/scenarios/bind/ok{i}.scn": matrix.Cell(matrix.Status.AGREE) for i in range(3)}
    cells["tests/scenarios/groups/three.scn"] = matrix.Cell(matrix.Status.AGREE)
    bad = dict(cells)
    bad["tests/scenarios/bind/conflict\x1b.scn"] = matrix.Cell(
        matrix.Status.DIVERGE, "line 6: bind(b, 10.0.0.1:8080) = EADDRINUSE: model EADDRINUSE, kernel 0")
    skip = dict(cells)
    skip["tests/scenarios/versions/old.scn"] = matrix.Cell(matrix.Status.SKIPPED, "@kernel < 5.0 excludes 6.1")
    return [matrix.Column("5.10", "5.10.0-46-cloud-amd64", "5.10", 61, cells=bad, report=corpus,
                          exercised={"bind.bhash2": ["tests/scenarios/bind/ok1.scn"]}),
            matrix.Column("6.1", "6.1.0-56-cloud-amd64", "6.1", 58, cells=skip),
            matrix.Column("7.2", problem="timed out after 900 s")]


def big_report(steps: int = 100_000) -> dict:
    """The run above with its divergent reuseport scenario copied until it has `steps` steps,
    every other copy agreeing: every cap of the page is reached."""
    report = run_report()
    divergent, agreeing = report["scenarios"][1], report["scenarios"][2]
    copies, n = [], 0
    while n < steps:
        sc = dict(divergent if len(copies) % 2 else agreeing, path=f"tests/scenarios/big/{len(copies)}.scn")
        copies.append(sc)
        n += len(sc["steps"])
    report["scenarios"] += copies
    report["summary"] = dict(report["summary"], scenarios=len(report["scenarios"]), steps=n)
    return report
