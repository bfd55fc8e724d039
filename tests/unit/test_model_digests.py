"""The model's outputs over the corpus and generated group runs are what they were: an
optimisation that changes one value, reason or property set fails here (tests/model_digest.py)."""

from __future__ import annotations

import json

from tests.model_digest import DIGESTS, MODES, digests


def test_every_scenarios_outcomes_and_reasons_are_unchanged():
    was = json.loads(DIGESTS.read_text())
    now = digests()
    assert set(now) == set(was), "scenarios added or removed: python -m tests.model_digest --write"
    changed = [(name, mode) for name in now for mode in MODES if now[name][mode] != was[name][mode]]
    assert not changed, (f"{len(changed)} outputs changed, first {changed[:5]}; if the model meant "
                         "to change them: python -m tests.model_digest --write")
