"""Nothing is left behind: after a run, after SIGTERM or Ctrl-C, and after kill -9 (reaped)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness.worker import Pool
from netns import namespace

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).parents[2]


def _start_run() -> tuple[subprocess.Popen, str, list[int]]:
    """Start a long `sockharness run`; wait until its namespace and worker exist."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "-q", "tests/scenarios", "tests/scenarios",
         "tests/scenarios", "tests/scenarios"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        names = [n for n in namespace.ours() if n.startswith(f"{namespace.PREFIX}{proc.pid}-")]
        kids = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        if names and kids:
            return proc, names[0], kids
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"run did not start a namespace: {proc.communicate()}")


def _gone(pids: list[int], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_pool_removes_its_namespace():
    with Pool() as p:
        from harness.parser import parse_text

        p.run(parse_text("x.scn", "a = socket(AF_INET, SOCK_STREAM)\nlisten(a, 1)\n"))
        name = p.worker.name
        pid = p.worker.proc.pid
        assert name in namespace.ours()
        assert p.worker.ifindex == {"lo": 1, "tun0": 2, "tun1": 3}  # as model_backend.host_of says
    assert name not in namespace.ours()
    assert _gone([pid])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_leaves_nothing(sig):
    proc, name, kids = _start_run()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode in (130, 128 + sig), (proc.returncode, err)
    assert "Traceback" not in err
    assert name not in namespace.ours()
    assert _gone(kids)


def test_kill_9_is_reaped_by_the_next_run():
    proc, name, kids = _start_run()
    proc.kill()
    proc.communicate(timeout=30)
    assert _gone(kids), "worker outlived its killed parent (PR_SET_PDEATHSIG)"
    assert name in namespace.ours()  # left behind by the killed run...
    with Pool() as p:
        assert name in p.reaped  # ...and reaped when the next one starts
    assert name not in namespace.ours()


def test_sysctl_refused_in_the_host_namespace():
    from netns import sysctl

    with pytest.raises(sysctl.HostSysctlRefused):
        sysctl.write("net.ipv4.ip_local_port_range", "40000 40001")
