"""The whole corpus on the model alone, against the expectations recorded from the kernels:
under each booted kernel's profile, that kernel's (its version clauses, else the default).
Needs no root: this is how the model is regression-checked on any machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.compare import compare
from harness.model_backend import ModelExecutor
from harness.parser import parse_file
from harness.runner import collect
from harness.spec import spec_for
from model.profiles import LINUX_6_18, PROFILES, RELEASE_PROFILES, UNBOOTED

CORPUS = Path(__file__).parents[1] / "scenarios"
FILES = collect([CORPUS])
# the profiles of kernels booted here, whose outcomes the corpus records
BOOTED = [p.name for p in RELEASE_PROFILES if p.name not in UNBOOTED]


def test_corpus_is_large_and_fully_recorded():
    """Every step has a recorded value except those whose value the kernel picks at random
    (an ephemeral port, a reuseport pick by the namespace's hash secret)."""
    assert len(FILES) >= 100
    for f in FILES:
        sc = parse_file(f)
        outcomes = ModelExecutor(LINUX_6_18).run(sc)
        unrecorded = [s.line for s, o in zip(sc.steps, outcomes, strict=True)
                      if s.expect is None and not o.random]
        assert not unrecorded, f"{f}: steps without a recorded expectation at lines {unrecorded}"


@pytest.mark.parametrize("profile", BOOTED)
@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_model_meets_recorded_expectations(path, profile):
    sc = parse_file(path)
    for rng in sc.kernel:  # as Runner.skip_reason: the scenario does not apply to this profile
        if not rng.admits(PROFILES[profile].version):
            pytest.skip(f"@kernel {rng} excludes profile {profile}")
    spec, _ = spec_for(PROFILES[profile])
    assert spec == PROFILES[profile].version
    res = compare(sc, ModelExecutor(PROFILES[profile]).run(sc), None, spec)
    assert res.agreed, "\n".join(f"line {s.step.line}: {s.problems}" for s in res.divergent)


def test_every_eaddrinuse_names_the_socket_it_conflicts_with():
    """`explain` answers "why EADDRINUSE?" with the conflicting socket, or with the port search
    that found no port at all."""
    seen = 0
    for f in FILES:
        sc = parse_file(f)
        for s, o in zip(sc.steps, ModelExecutor(LINUX_6_18).run(sc), strict=True):
            if o.value != "EADDRINUSE":
                continue
            seen += 1
            names = {t.name for t in sc.steps if hasattr(t, "name")}
            named = any(f"conflicts with {n} (" in o.reason for n in names)
            assert named or "no free port" in o.reason, f"{f}:{s.line}: {o.reason}"
    assert seen > 300
