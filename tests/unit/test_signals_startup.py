"""Signals at the two edges of a run: while a program is still importing (one line, 128 +
signal, no traceback), and a handler's exception swallowed on the way (the status still says
the run was stopped)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.signals import run_interruptible

ROOT = Path(__file__).resolve().parents[2]
IMPORTING = ("import sys; sys.argv[0] = {argv0!r}; import harness, os, signal, time; "
             "os.kill(os.getpid(), signal.{sig}); time.sleep(5)")


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_while_a_program_imports_is_one_line_and_128_plus_signal(sig):
    r = subprocess.run([sys.executable, "-c", IMPORTING.format(argv0="-m", sig=sig)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 128 + signal.Signals[sig], r.stderr
    assert r.stderr.splitlines() == [f"sockharness: {sig} with nothing to clean up (the run had not begun, "
                                     "or had ended)"]


def test_a_library_user_keeps_its_own_handlers():
    r = subprocess.run([sys.executable, "-c", IMPORTING.format(argv0="mine.py", sig="SIGINT")], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGINT and "KeyboardInterrupt" in r.stderr  # Python's own way


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_whose_exception_was_swallowed_still_sets_the_status(sig, capsys):
    def body() -> int:
        try:  # as a ctypes callback or logging's lock release would
            os.kill(os.getpid(), sig)
            for _ in range(10_000):
                pass
        except BaseException:  # noqa: B036
            pass
        return 0
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert run_interruptible("prog", body) == 128 + sig
        assert {s: signal.getsignal(s) for s in old} == old  # the handlers from before are back
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert "swallowed" in capsys.readouterr().err
