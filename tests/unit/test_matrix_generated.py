"""Committed generated scenarios are what their generators in tests/scenarios produce
(expectations aside)."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path

import pytest

from harness.parser import parse_file, parse_text

HERE = Path(__file__).parents[1] / "scenarios"


def _matrix():
    spec = importlib.util.spec_from_file_location("matrix", HERE / "matrix.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_matrix_matches_generator():
    m = _matrix()
    combos = list(itertools.product(m.FLAGS, m.FLAGS, m.UIDS, m.ADDRS, m.ORDERS))
    assert len(combos) == len(list(m.OUT.glob("*.scn"))) == 192
    for combo in combos:
        path = m.OUT / ("-".join(combo) + ".scn")
        fresh = parse_text(path, m.scenario(*combo))
        committed = parse_file(path)
        assert [s.call for s in fresh.steps] == [s.call for s in committed.steps], path


def test_committed_groups_match_generator():
    spec = importlib.util.spec_from_file_location("scenario_groups", HERE / "groups.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["scenario_groups"] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    files = sorted(mod.OUT.glob("*.scn"))
    assert len(files) == len(mod.CASES)
    for case in mod.CASES:
        path = mod.OUT / f"{case.size:03d}-{case.variant}.scn"
        fresh = parse_text(path, mod.scenario(case))
        assert [s.call for s in fresh.steps] == [s.call for s in parse_file(path).steps], path


# generators with cases() -> [(name, text)], and how many files each must produce at least
CASE_GENERATORS = {"bind6_matrix": 140, "devices": 40, "rawaddr": 20, "connect_matrix": 25,
                   "timewait": 60, "bhash2": 26, "queues": 40, "migration": 95, "replies": 12,
                   "ebpf": 78, "udp_bind": 165, "udp_lookup": 104}


def _generate():
    spec = importlib.util.spec_from_file_location("scenario_generate", HERE / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["scenario_generate"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_every_generator_is_checked():
    assert set(_generate().GENERATORS) == set(CASE_GENERATORS)


@pytest.mark.parametrize("generator", sorted(CASE_GENERATORS))
def test_committed_files_match_generator(generator):
    mod = _generate().load(generator)
    cases = mod.cases()
    assert len(list(mod.OUT.glob("*.scn"))) == len(cases) >= CASE_GENERATORS[generator]
    for name, text in cases:
        path = mod.OUT / f"{name}.scn"
        assert [s.call for s in parse_text(path, text).steps] == [s.call for s in parse_file(path).steps], path
