"""The profile probe's inference on outcomes recorded from booted kernels (tests/data/probe/,
written by `sockharness profiles --probe --withhold --json` on the host and in each guest of
`sockharness kernels`): with the kernel's own profile withheld, every field is recovered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import probe
from model.outcome import Outcome
from model.profiles import PROFILES, parse_release

DATA = Path(__file__).parents[1] / "data" / "probe"
RECORDED = sorted(DATA.glob("*.json"))


def _load(path: Path):
    data = json.loads(path.read_text())
    return data, probe.observations_from_json(data["observations"])


def test_recorded_kernels_are_there():
    assert {p.stem for p in RECORDED} >= {"6.18"}


@pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
def test_inference_recovers_the_withheld_profile(path):
    data, observations = _load(path)
    own = PROFILES[path.stem]
    assert parse_release(data["kernel_release"]) == own.version
    inf = probe.infer(observations, own.version, data["ehash_lport_outside"], [own])
    assert inf.fits, [str(o.scenario.path) for o in inf.unfit]
    assert inf.start not in {own.name} and inf.profile.ehash_lport_outside == own.ehash_lport_outside
    wrong = [v.name for v in inf.verdicts if probe.get(own, v.name) != v.value]
    assert not wrong, f"not recovered: {wrong}"
    # a field no scenario decides must be moot under these rules (bhash2's fields without
    # bhash2); one the observations fit either way wants a probe scenario that tells
    undecided = [v.name for v in inf.verdicts if not v.decided_by and not v.note.startswith("moot")]
    assert not undecided, undecided


def test_an_outcome_no_profile_gives_is_new_behaviour():
    """A kernel that answers a bind no known rule answers so: no combination fits, and the
    scenario is named."""
    _, observations = _load(DATA / "6.18.json")
    ob = next(o for o in observations if o.scenario.path.name == "eaddrnotavail.scn")
    i = next(i for i, s in enumerate(ob.scenario.steps) if s.verb == "bind")
    ob.kernel[i] = Outcome("EPERM")  # no profile's bind() says EPERM here
    inf = probe.infer(observations, (6, 18), True, [PROFILES["6.18"]])
    assert not inf.fits and [o.scenario.path.name for o in inf.unfit] == ["eaddrnotavail.scn"]
    assert any("NEW BEHAVIOUR" in line for line in probe.report_lines(inf, {}))


def test_a_field_the_observations_cannot_tell_is_undecided():
    _, observations = _load(DATA / "6.18.json")
    keep = [o for o in observations if "bhash2/" not in str(o.scenario.path)]
    inf = probe.infer(keep, (6, 18), True, [PROFILES["6.18"]])
    verdict = {v.name: v for v in inf.verdicts}["bind.any_family_strict"]
    assert not verdict.decided_by and verdict.note.startswith("moot")


def test_a_kernel_without_a_profile_runs_under_its_inferred_one(tmp_path, monkeypatch):
    """running_profile(): the release's own profile, else the inferred one kept by an earlier
    probe (named on the first line of every run), else the nearest older one, with the reason."""
    from harness import running

    monkeypatch.setattr(probe, "CACHE", tmp_path)
    monkeypatch.setattr(probe, "_MEMORY", {})
    monkeypatch.setattr(running.platform, "release", lambda: "6.9.1-custom")
    profile, note = running.running_profile()
    assert profile is PROFILES["6.8"] and "none inferred yet" in note
    _, observations = _load(DATA / "6.18.json")
    inf = probe.infer(observations, (6, 9), True, [PROFILES["6.18"]])
    probe.save_inferred("6.9.1-custom", inf, {})
    monkeypatch.setattr(probe, "_MEMORY", {})  # as a later process: read back from the file
    profile, note = running.running_profile()
    assert profile.name == "6.9-inferred" and profile.version == (6, 9)
    assert probe.same_rules(profile, PROFILES["6.18"]) and "inferred by" in note and "the rules of 7.2" in note
    monkeypatch.setattr(running.platform, "release", lambda: "6.18.44")
    assert running.running_profile() == (PROFILES["6.18"], "")


def test_a_damaged_kept_profile_is_as_if_none_were_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(probe, "CACHE", tmp_path)
    monkeypatch.setattr(probe, "_MEMORY", {})
    probe._inferred_path("6.9.1-x").write_text('{"profile": 3')
    assert probe.load_inferred("6.9.1-x") is None
