"""SIGTERM and Ctrl-C while numba's parallel hash search runs (harness/calibrate.py) end like
anywhere else: exit 143 or 130, one line, no traceback or crash, no namespace or worker left.

The window is made certain, not hit by a sleep: SOCKH_CALIBRATE_PASSES makes the search run
the whole range many times and say on stderr once it is under way; the signal is sent when
that line is read, so it lands in jitted code (where it once crashed the process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from test_cleanup import _gone, _kill_by_pid, _lines

from harness.calibrate import FULL_RANGE, PASSES_ENV
from netns import namespace

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).parents[2]
UNDER_WAY = f"calibrate: searching [0, {FULL_RANGE})"
PASSES = 500  # far longer than the test waits: the exit can only come from the signal


def _default_sigint() -> None:
    """A runner started with Ctrl-C ignored (nohup, some CI shells) would pass that on."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# `make bench` as harness/bench.py's __main__ runs it, less the model-only figures it prints
# first (a minute of CPU before any namespace or calibration)
BENCH = ("import sys; from harness import bench; from harness.signals import run_interruptible; "
         "bench.ephemeral_scaling = lambda: None; "
         "sys.exit(run_interruptible('sockharness-bench', lambda: bench.main(sys.argv[1:])))")
COMMANDS = {
    "run": ("sockharness", ["-m", "harness", "run", "-q", "tests/scenarios/groups"]),
    "bench": ("sockharness-bench", ["-c", BENCH, "--syns", "200", "--scapy-syns", "20"]),
    "fuzz": ("sockharness-fuzz", ["-m", "harness.fuzz", "--count", "30"]),
}


@pytest.mark.native_speed("waits for a search of all 2**32 secrets to be under way, minutes under TCG")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_signal_inside_the_hash_search(command, sig, tmp_path):
    prog, args = COMMANDS[command]
    if command == "fuzz":
        args = [*args, "--out", str(tmp_path / "fuzz")]
    env = {**os.environ, PASSES_ENV: str(PASSES)}
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)
    kids: list[int] = []
    try:
        lines = _lines(proc.stderr)
        before: list[str] = []
        deadline = time.monotonic() + 300  # a cold numba cache compiles first
        while True:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, f"ended before calibrating: {''.join(before)}"
            if line.startswith(UNDER_WAY):
                break
            before.append(line)
        names = [n for n in namespace.ours() if n.startswith(f"{namespace.PREFIX}{proc.pid}-")]
        kids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        assert names and kids, (names, kids)  # the probe ran in a namespace: both exist now
        proc.send_signal(sig)
        proc.wait(timeout=60)
        after = []
        while (line := lines.get(timeout=10)) is not None:
            after.append(line)
        word = "terminated" if sig == signal.SIGTERM else "interrupted"
        assert proc.returncode == 128 + sig, (proc.returncode, after)
        assert after == [f"{prog}: {word}; namespaces and workers removed\n"], after
        assert not any(n in namespace.ours() for n in names)
        assert not os.path.exists(f"/run/netns/{names[0]}")
        assert _gone(kids)
    finally:
        proc.kill()
        proc.wait(30)
        _kill_by_pid(kids)
