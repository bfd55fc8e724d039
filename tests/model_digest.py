"""The model's output over the whole corpus, reduced to one sha256 per scenario and mode: what
`explain` prints (no secret) and what a both-backend run compares and reports (a fixed hash
secret, both inet_ehashfn forms). Optimisations of the model must leave every digest as it
was (issue "Performance": explain output byte-identical). Written by
`python -m tests.model_digest --write` when a model change is meant to change outputs."""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from harness import lookup_scenarios
from harness.model_backend import ModelExecutor
from harness.parser import parse_file
from harness.runner import collect
from harness.scenario import Scenario
from model.profiles import LINUX_5_10, LINUX_6_18

ROOT = Path(__file__).parents[1]
CORPUS = ROOT / "tests" / "scenarios"
DIGESTS = ROOT / "tests" / "data" / "model_digests.json"
SECRET = 0x5EC2E7A1  # any fixed value: the digests hold the reasons' hash figures
# explain's own view, and a both-backend run's under 6.18 (lport outside the jhash) and 5.10
MODES = {
    "explain-6.18": (LINUX_6_18, None),
    "secret-6.18": (LINUX_6_18, SECRET),
    "secret-5.10": (LINUX_5_10, SECRET),
}


def outcome_lines(profile, secret: int | None, sc: Scenario) -> str:
    """Every step's value, reason, property sets and random flag, one line each."""
    lines = []
    for step, o in zip(sc.steps, ModelExecutor(profile, 0, secret).run(sc), strict=True):
        ports = o.candidates.describe() if o.candidates is not None else ""
        lines.append(f"{step.line}\t{step.call}\t{o.value}\t{o.reason}\t{','.join(o.one_of)}\t{ports}\t{o.random}")
    return "\n".join(lines) + "\n"


def work() -> list[tuple[str, Scenario]]:
    """The corpus, and generated verification runs (reuseport groups of 2, 8, 256 with closes
    and re-listens: the 100,000-SYN test's and the bench's kind of work)."""
    named = [(str(p.relative_to(ROOT)), parse_file(p)) for p in collect([CORPUS])]
    generated = lookup_scenarios.scenarios(6000, seed=7, sizes=(2, 8, 256), batch=500, batches=4)
    return named + [(str(sc.path), sc) for sc in generated]


def digests() -> dict[str, dict[str, str]]:
    return {name: {mode: hashlib.sha256(outcome_lines(p, s, sc).encode()).hexdigest()[:16]
                   for mode, (p, s) in MODES.items()} for name, sc in work()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite {DIGESTS.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    now = digests()
    if args.write:
        DIGESTS.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"{len(now)} scenarios x {len(MODES)} modes written to {DIGESTS}")
        return 0
    was = json.loads(DIGESTS.read_text())
    changed = sorted(k for k in now if was.get(k) != now[k])
    print(f"{len(changed)} of {len(now)} scenarios changed", *changed, sep="\n")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
