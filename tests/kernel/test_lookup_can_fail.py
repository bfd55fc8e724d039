"""The lookup checks catch a wrong model: a close rule that keeps socks[] in order (instead of
moving the last socket into the freed slot) must diverge on the SYNs after the close."""

from __future__ import annotations

from pathlib import Path

import pytest

import model.reuseport
from harness.parser import parse_file
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
GROUPS = Path(__file__).parents[1] / "scenarios" / "groups"


def test_order_keeping_close_is_caught(pool, monkeypatch):
    def keeps_order(sk, group):
        group.socks.remove(sk)  # wrong: __reuseport_detach_sock moves the last one in
        group._described = None

    sc = parse_file(GROUPS / "064-close-middle.scn")
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool)
    assert runner.run_one(sc).agreed  # the real rule agrees...
    monkeypatch.setattr(model.reuseport, "_detach_listening", keeps_order)
    res = runner.run_one(sc)  # ...the wrong one does not
    close_line = next(s.line for s in sc.steps if s.verb == "close")
    assert res.divergent, "a wrong close rule went unnoticed"
    first = res.divergent[0]
    assert first.step.verb == "syn" and first.step.line > close_line
    assert first.model.value != first.kernel.value
