"""The soak's survey does see leftovers: a SIGKILLed run's namespace and a QEMU boot's temp
folder before the next start reaps them, and a process of ours in a namespace no name shows."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from leftovers import family, invisible, settle, survey
from test_signals import COMMANDS, ROOT

from netns import namespace

pytestmark = [pytest.mark.soak, pytest.mark.kernel]


def _until(cond, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def _killed_then_reaped(name: str, stage, tmp_path: Path, seen) -> None:
    """SIGKILL `name` once `stage` holds; the survey must report `seen`; the next start reaps it."""
    cmd = COMMANDS[name]
    since = time.time() - 1
    proc = subprocess.Popen(cmd.argv(tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        _until(lambda: proc.poll() is not None or stage(proc.pid))
        started = family(proc.pid)
        proc.kill()
        proc.wait(30)
        left = settle(started, {proc.pid}, since, timeout=3)
        assert seen(left), left
        reaper = subprocess.run(cmd.reaper(tmp_path), cwd=ROOT, capture_output=True, timeout=300)
        assert reaper.returncode == cmd.reaper_exit, reaper.stdout[-500:]
        assert not settle(started, {proc.pid}, since), "reaped, yet left"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)


def test_a_killed_runs_namespace_is_seen_until_reaped(tmp_path):
    def has_namespace(pid: int) -> bool:
        return any(n.startswith(f"{namespace.PREFIX}{pid}-") for n in namespace.ours())

    _killed_then_reaped("run", has_namespace, tmp_path, lambda left: left.namespaces)


def test_a_killed_boots_temp_folder_is_seen_until_reaped(tmp_path, request):
    request.getfixturevalue("debian_6_12")
    from harness.guests import reap

    def booting(pid: int) -> bool:
        return any(p.name() == "qemu-system-x86_64" for p in _children(pid)) and any(
            d.name.startswith(f"{reap.PREFIX}{pid}-") for d in Path("/tmp").iterdir())

    _killed_then_reaped("kernels", booting, tmp_path, lambda left: left.temp)


def _children(pid: int):
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid).children(recursive=True)
    return []


HIDDEN = """
import ctypes, os, sys, time
from netns import namespace
r, w = os.pipe()
pid = os.fork()
if pid == 0:  # orphaned when its parent exits below, as a worker whose run was killed
    ctypes.CDLL(None, use_errno=True).unshare(0x40000000)  # CLONE_NEWNET: a namespace with no name
    namespace.mark_worker()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.write(w, b"x")
    time.sleep(60)
    os._exit(0)
os.read(r, 1)
print(pid, flush=True)
"""


def test_an_orphan_of_ours_in_an_unnamed_namespace_is_seen(tmp_path):
    import psutil

    since = time.time() - 1
    out = subprocess.run([sys.executable, "-c", HIDDEN], cwd=ROOT, capture_output=True, text=True,
                         timeout=30, check=True).stdout
    pid = int(out)
    try:
        _until(lambda: psutil.Process(pid).ppid() == 1, 10)
        assert pid in {p.pid for p in invisible(since)}
        assert survey(set(), set(), since).processes  # named as left behind
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _until(lambda: pid not in {p.pid for p in invisible(since)}, 10)
