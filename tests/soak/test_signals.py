"""SIGINT, SIGTERM and SIGKILL at random points of a run, of hash calibration, of `bench` and
`fuzz` startup and of a QEMU boot (`sockharness kernels`): nothing of ours is left.

`make soak-signals` (SOAK_RUNS runs of each command x signal, default 30; SOAK_SEED fixes the
random delays, printed in the header and on each run's line). SIGINT goes to the command's
process group, as a terminal's Ctrl-C does; SIGTERM and SIGKILL to its PID, as kill(1) does.
After SIGINT or SIGTERM the command must exit 130 or 143 (or die of SIGTERM's default action if
it came before the handler was installed) without a traceback, and leave nothing; after SIGKILL
the next start of a command (which reaps what a killed run left) must leave nothing either.
"Nothing": leftovers.survey (processes, namespaces named or not, TUN devices, temp files).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from leftovers import Proc, family, settle

from netns import namespace

pytestmark = [pytest.mark.soak, pytest.mark.kernel]

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
RUNS = int(os.environ.get("SOAK_RUNS", "30"))
SEED = int(os.environ.get("SOAK_SEED") or time.time_ns() % 1_000_000)
EXIT_WAIT = 90.0  # seconds a signalled command may take to exit
TINY = "tests/scenarios/listen/listen-twice.scn"


def _calibrating(pid: int) -> bool:
    """The run's namespace exists and numba's thread pool has started in it: the hash search
    (harness/calibrate.py, prange) is under way."""
    try:
        threads = psutil.Process(pid).num_threads()
    except psutil.NoSuchProcess:
        return False
    return threads >= 3 and any(n.startswith(f"{namespace.PREFIX}{pid}-") for n in namespace.ours())


@dataclass(frozen=True)
class Command:
    """A command to interrupt: its argv (given a scratch folder), when the window for the signal
    opens (None: at once), the window's length, and the next start that reaps after SIGKILL."""

    name: str
    argv: Callable[[Path], list[str]]
    window: float
    reaper: Callable[[Path], list[str]]
    reaper_exit: int
    opens: Callable[[int], bool] | None = None


def _run_reaper(scratch: Path) -> list[str]:
    return [PY, "-m", "harness", "run", "-q", TINY]


def _kernels_reaper(scratch: Path) -> list[str]:
    # `kernels` reaps stale boot folders first, then refuses the missing kernel (exit 125)
    return [PY, "-m", "harness", "kernels", "--kernel", str(scratch / "no-such-kernel"), "--out", str(scratch / "k")]


COMMANDS = {c.name: c for c in (
    Command("run", lambda s: [PY, "-m", "harness", "run", "-q", "tests/scenarios"], 8.0, _run_reaper, 0),
    Command("calibration", lambda s: [PY, "-m", "harness", "run", "-q", "tests/scenarios/groups"], 1.5,
            _run_reaper, 0, opens=_calibrating),
    Command("bench", lambda s: [PY, "-m", "harness.bench", "--syns", "2000", "--scapy-syns", "200"], 8.0,
            _run_reaper, 0),
    Command("fuzz", lambda s: [PY, "-m", "harness.fuzz", "--count", "300", "--out", str(s / "fuzz")], 3.0,
            _run_reaper, 0),
    Command("kernels", lambda s: [PY, "-m", "harness", "kernels", "--versions", "6.12", "--out", str(s / "k"),
                                  "--kernel-tests", "--no-host", "--timeout", "600"], 30.0,
            _kernels_reaper, 125),
)}
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
# -SIGINT and -SIGTERM: the signal came as the program was exiting, after its work was done:
# Python's finalization puts back the default handlers (Modules/signalmodule.c:_PySignal_Fini),
# so the process dies of the signal, which is also how a shell expects a Ctrl-C to end a process
_EXPECTED = {signal.SIGINT: {130, -signal.SIGINT}, signal.SIGTERM: {143, -signal.SIGTERM},
             signal.SIGKILL: {-signal.SIGKILL}}


def _in_python_startup(stderr: str) -> bool:
    """A KeyboardInterrupt traceback none of whose frames is the project's own code (harness/,
    netns/, model/): Python's site and the virtualenv's start-up imports."""
    frames = re.findall(r'^  File "([^"]+)"', stderr, re.M)
    ours = [f for f in frames if any(f.startswith(f"{ROOT}/{d}/") for d in ("harness", "netns", "model"))]
    return stderr.rstrip().endswith("KeyboardInterrupt") and bool(frames) and not ours


def _names(procs: set[Proc]) -> str:
    """What ran, by program name and count (a worker, QEMU, virtiofsd…), for the run's line."""
    counts: dict[str, int] = {}
    for p in procs:
        counts[p.name] = counts.get(p.name, 0) + 1
    return ", ".join(f"{n} x{c}" for n, c in sorted(counts.items()))


def _kill_family(procs: set[Proc]) -> None:
    """Clean-up after a failed run: SIGKILL what we started, by PID."""
    for p in procs:
        if p.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)


@pytest.mark.parametrize("run", range(RUNS), ids=lambda i: f"{i:02d}")
@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name[3:])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_signal_leaves_nothing(name, sig, run, tmp_path, request):
    cmd = COMMANDS[name]
    if name == "kernels":
        request.getfixturevalue("debian_6_12")
    delay = random.Random(f"{SEED}:{name}:{sig.name}:{run}").uniform(0, cmd.window)
    since = time.time() - 1  # processes of ours created from here on
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(cmd.argv(tmp_path), cwd=ROOT, stdin=subprocess.DEVNULL, stdout=o, stderr=e,
                                start_new_session=True)
    started = family(proc.pid)
    problems: list[str] = []
    t0 = time.monotonic()
    try:
        if cmd.opens is not None:  # the window opens when the command reaches that point
            while not cmd.opens(proc.pid):
                started |= family(proc.pid)
                if proc.poll() is not None or time.monotonic() - t0 > 120:
                    pytest.fail(f"{name}: never reached its window (exit {proc.poll()}): "
                                f"{err.read_text()[-500:]}")
                time.sleep(0.02)
        opened = time.monotonic()
        while time.monotonic() - opened < delay and proc.poll() is None:
            started |= family(proc.pid)
            time.sleep(0.02)
        started |= family(proc.pid)
        at = time.monotonic() - t0
        finished_first = proc.poll() is not None
        note = ""
        if not finished_first:
            if sig is signal.SIGINT:
                os.killpg(proc.pid, sig)  # Ctrl-C: the whole foreground group
            else:
                os.kill(proc.pid, sig)
        try:
            code = proc.wait(EXIT_WAIT)
        except subprocess.TimeoutExpired:
            problems.append(f"still running {EXIT_WAIT:.0f} s after {sig.name}")
            _kill_family(started | family(proc.pid))
            code = proc.wait(30)
        stderr = err.read_text(errors="replace")
        if finished_first:
            problems.append(f"finished (exit {code}) before the signal at {at:.2f} s: window too long")
        elif _in_python_startup(stderr):  # Python's own start, before any code of ours: its traceback
            note = "interrupted in Python's startup, before any code of the project"
        else:
            if code not in _EXPECTED[sig]:
                problems.append(f"exit {code} after {sig.name} (expected {sorted(_EXPECTED[sig])})")
            for bad in ("Traceback", "Segmentation fault", "Fatal Python error"):
                if bad in stderr:
                    problems.append(f"stderr has {bad!r}: {stderr[-800:]}")
        owners = {proc.pid}
        if sig is signal.SIGKILL:  # the next start reaps what the killed one left
            reaper = subprocess.Popen(cmd.reaper(tmp_path), cwd=ROOT, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            owners.add(reaper.pid)
            said = reaper.communicate(timeout=300)[0]
            if reaper.returncode != cmd.reaper_exit:
                problems.append(f"the next start exited {reaper.returncode}: {said[-500:]}")
        left = settle(started, owners, since)
        if left:
            problems.append(f"left behind: {left}")
    finally:
        _kill_family(started | family(proc.pid))
    line = (f"{name} {sig.name} #{run:02d} seed {SEED}: {sig.name} at {at:.2f} s "
            f"(window +{delay:.2f} s; live then: {_names(started)}), exit {code}")
    print(line + (f" ({note})" if note else "") + (": " + "; ".join(problems) if problems else ": nothing left"),
          flush=True)
    assert not problems, line + ": " + "; ".join(problems)
