"""Every version clause in the corpus is justified by a profile field: the scenario's model
outcome changes when one field in which that version's profile differs from the default's
(6.18) takes the default's value. A clause no field explains is a model gap to report."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.guests.matrix import SECRET, differing
from harness.model_backend import ModelExecutor
from harness.parser import parse_file
from harness.runner import collect
from harness.scenario import DEFAULT_SPEC, version_text
from model.profiles import PROFILES, RELEASE_PROFILES, with_fields

CORPUS = Path(__file__).parents[1] / "scenarios"
DEFAULT = next(p for p in RELEASE_PROFILES if p.version == DEFAULT_SPEC)
BY_VERSION = {p.version: p for p in RELEASE_PROFILES}
CASES = sorted({(f, v) for f in collect([CORPUS]) for s in parse_file(f).steps
                for c in s.versions for v in BY_VERSION if c.covers(v)})


def fields_deciding(path: Path, version) -> list[str]:
    sc = parse_file(path)
    profile = BY_VERSION[version]

    def values(p):
        return [(o.value, o.random) for o in ModelExecutor(p, 0, SECRET).run(sc)]

    mine = values(profile)
    return [name for name, theirs in differing(profile, DEFAULT)
            if values(with_fields(profile, {name: str(theirs)})) != mine]


def test_the_corpus_has_clauses_of_every_differing_booted_kernel():
    assert {version_text(v) for _, v in CASES} >= {"5.10", "6.1", "6.12"}


@pytest.mark.parametrize("path, version", CASES,
                         ids=[f"{p.relative_to(CORPUS)}-{version_text(v)}" for p, v in CASES])
def test_clause_is_justified_by_a_profile_field(path, version):
    assert PROFILES[BY_VERSION[version].name] is BY_VERSION[version]
    assert fields_deciding(path, version), f"{path}: no field of {version_text(version)} explains its clause"
