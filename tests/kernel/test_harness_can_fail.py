"""The harness catches a wrong model: deliberately broken rules must be reported, at the right
step, with both outcomes."""

from __future__ import annotations

from pathlib import Path

import pytest

import model.bind
from harness.minimize import minimize
from harness.parser import parse_file
from harness.report import divergence_text
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
MATRIX = Path(__file__).parents[1] / "scenarios" / "bind_matrix"


def test_reuseport_rule_that_ignores_uid_is_caught(pool, monkeypatch):
    real = model.bind.inet_bind_conflict

    def ignores_uid(sk, sk2, uid, relax, cb_ok, reuseport_ok):
        return real(sk, sk2, sk2.uid, relax, cb_ok, reuseport_ok)  # pretends uids match

    monkeypatch.setattr(model.bind, "inet_bind_conflict", ignores_uid)
    sc = parse_file(MATRIX / "port-port-diffuid-same-bind-before-listen.scn")
    res = Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one(sc)
    first = res.divergent[0]
    assert first.step.call == "bind(b, 10.0.0.1:8080)"
    assert first.model.value == "0" and first.kernel.value == "EADDRINUSE"
    assert "model 0 != kernel EADDRINUSE" in first.problems
    text = divergence_text(res)
    assert f"line {first.step.line}: bind(b, 10.0.0.1:8080) = EADDRINUSE" in text
    assert "model : 0" in text and "kernel: EADDRINUSE" in text
    # The minimal reproducer keeps what the divergence needs (both SO_REUSEPORT, both binds)
    # and drops the rest of the 30-odd steps.
    reduction = minimize(res, Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one)
    assert reduction.minimal, reduction.label
    minimal = reduction.text.splitlines()
    assert minimal[-1].startswith("bind(b, 10.0.0.1:8080)")
    calls = [ln.split(" = ")[0] for ln in minimal]
    assert "setsockopt(a, SO_REUSEPORT, 1)" in calls and "setsockopt(b, SO_REUSEPORT, 1)" in calls
    assert len(minimal) == 6, minimal


def test_listen_without_recheck_is_caught(pool, monkeypatch):
    """A model whose listen() skips inet_csk_listen_start's get_port re-check."""
    import model.kernel

    real = model.kernel.Kernel._get_port

    def no_recheck(self, sk, snum, choice):
        if sk.state.value == "LISTEN" and snum:
            return None, None, "skipped"
        return real(self, sk, snum, choice)

    monkeypatch.setattr(model.kernel.Kernel, "_get_port", no_recheck)
    sc = parse_file(MATRIX / "addr-addr-sameuid-same-bind-before-listen.scn")
    res = Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one(sc)
    first = res.divergent[0]
    assert first.step.call == "listen(b, 16)"
    assert (first.model.value, first.kernel.value) == ("0", "EADDRINUSE")
