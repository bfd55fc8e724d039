"""Nothing is left behind: after a run, after SIGTERM or Ctrl-C, and after kill -9 (reaped)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from procfs import tun_fds

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


@pytest.mark.native_speed("waits at most 30 s for a `sockharness run` to start, which an emulated kernel exceeds")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_leaves_nothing(sig):
    proc, name, kids = _start_run()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode in (130, 128 + sig), (proc.returncode, err)
    assert "Traceback" not in err
    assert name not in namespace.ours()
    assert _gone(kids)


@pytest.mark.native_speed("waits at most 30 s for a `sockharness run` to start, which an emulated kernel exceeds")
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


# -- kill -9 after a credential change; the reaper and processes left in a stale namespace ----

SOCKHARNESS = Path(sys.executable).parent / "sockharness"
UID_SCENARIO = ("a = socket(AF_INET, SOCK_STREAM, uid=1000) = 0\n"
                "bind(a, 10.0.0.1:8080) = 0\n"
                "listen(a, 8) = 0\n")


def _in_netns(ns: tuple[int, int]) -> list[int]:
    """PIDs with a thread in the network namespace `ns` (a zombie has none)."""
    found = []
    for pid in psutil.pids():
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        if any(namespace.netns_id(f"/proc/{pid}/task/{tid}/ns/net") == ns for tid in tids):
            found.append(pid)
    return found


def _tun_fds() -> set[tuple[int, int, str]]:
    """(pid, fd, device) of every open /dev/net/tun on the machine (procfs.tun_fds)."""
    return tun_fds(psutil.pids())


def _wait_for(cond, timeout: float):
    """cond()'s first true value within `timeout` seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.02)


def _lines(stream) -> queue.SimpleQueue:
    """The lines of a stream, read by a daemon thread (None at EOF), to wait on with a timeout."""
    q: queue.SimpleQueue = queue.SimpleQueue()

    def pump() -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return q


def _kill_by_pid(pids) -> None:
    """Clean-up of processes this test started (directly or as the run's worker), by PID."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.native_speed("waits at most 30 s for a `sockharness run` to start, which an emulated kernel exceeds")
def test_kill_9_after_a_uid_change_leaves_nothing(tmp_path):
    """seteuid() clears PR_SET_PDEATHSIG (prctl(2)): a worker that has run a uid=1000 socket
    must still die with its killed parent, not live on under PID 1 with its namespace and TUN
    devices; the next Pool() reaps the name while the killed parent is still an unreaped
    zombie, and nothing of the namespace is left."""
    scn = tmp_path / "uid1000.scn"
    scn.write_text(UID_SCENARIO)
    tun_before = _tun_fds()
    proc = subprocess.Popen([str(SOCKHARNESS), "run", "--repeat", "100000", str(scn)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    workers: list[int] = []
    try:
        lines = _lines(proc.stdout)
        deadline = time.monotonic() + 60
        while True:  # "[1/100000] ...: ok" (counted across --repeat runs): the worker has run the uid=1000 steps (euid 1000 and back)
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.1))
            assert line is not None, "run ended before its first scenario"
            if line.startswith("[1/"):
                assert line.rstrip().endswith(": ok"), line
                break
        names = [n for n in namespace.ours() if n.startswith(f"{namespace.PREFIX}{proc.pid}-")]
        assert len(names) == 1, names
        name = names[0]
        ns = namespace.netns_id(f"/run/netns/{name}")
        assert ns is not None
        workers = [c.pid for c in psutil.Process(proc.pid).children() if namespace.netns_id(f"/proc/{c.pid}/ns/net") == ns]
        assert len(workers) == 1, workers
        assert any(pid == workers[0] for pid, _, _ in _tun_fds())  # the worker holds the TUNs

        proc.kill()  # not waited for yet: the owner is a zombie while the next Pool() starts
        assert _gone(workers, timeout=10), "worker outlived its killed parent after a uid change"
        assert name in namespace.ours()  # left by the killed run...
        assert _wait_for(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, 5)
        with Pool() as p:
            assert name in p.reaped  # ...and reaped, though its owner's PID is still a zombie's
        assert name not in namespace.ours()
        assert _in_netns(ns) == []
        assert _wait_for(lambda: _tun_fds() <= tun_before, 5), _tun_fds() - tun_before
    finally:
        proc.kill()
        proc.wait(30)
        _kill_by_pid(workers)


FAKE_WORKER = """
import os, sys, time
from netns import namespace

name = namespace.new_name()
namespace.create(name)
r, w = os.pipe()
pid = os.fork()
if pid == 0:  # a process left in the namespace, as a worker that outlived its parent would be
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    namespace.enter(name)
    if sys.argv[1] == "ours":
        namespace.mark_worker()
    os.write(w, b"x")
    time.sleep(120)
    os._exit(0)
os.read(r, 1)
print(name, pid, flush=True)
"""


@pytest.mark.parametrize("whose", ["ours", "theirs"])
def test_reaper_kills_our_worker_left_in_a_stale_namespace(whose):
    """A stale namespace (owner dead) with a live process in it: the reaper kills it (SIGKILL,
    by PID) before removing the name when it is our worker; anyone else's process is left
    alone, and so is the name (`ip netns list` keeps showing what still lives)."""
    out = subprocess.run([sys.executable, "-c", FAKE_WORKER, whose], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    name, pid_text = out.split()
    pid = int(pid_text)
    try:
        ns = namespace.netns_id(f"/run/netns/{name}")
        assert ns is not None and _in_netns(ns) == [pid]
        assert not namespace.owner_alive(name)
        with Pool() as p:
            reaped = list(p.reaped)
        if whose == "ours":
            assert name in reaped
            assert name not in namespace.ours()
            assert _gone([pid], timeout=5), "the reaper removed the name of a namespace our worker still lives in"
        else:
            assert name not in reaped
            assert name in namespace.ours()
            assert psutil.Process(pid).status() != psutil.STATUS_ZOMBIE  # not ours: not killed
    finally:
        _kill_by_pid([pid])
        namespace.remove(name)


PR_GET_PDEATHSIG = 2


def test_uid_change_keeps_the_parent_death_signal():
    """Both seteuid() calls of effective_uid clear PR_SET_PDEATHSIG: it must be armed again."""
    import ctypes

    from harness.kernel_backend import die_with_parent, effective_uid

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker's sequence: armed, a uid=1000 call, then read back
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            die_with_parent(os.getppid())
            with effective_uid(1000):
                euid = os.geteuid()
            sig = ctypes.c_int(-1)
            libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0)
            os.write(w, f"{euid} {sig.value}".encode())
        finally:
            os._exit(0)
    os.close(w)
    try:
        with os.fdopen(r) as f:
            answer = f.read()
    finally:
        os.waitpid(pid, 0)
    assert answer == f"1000 {int(signal.SIGKILL)}", answer  # euid in the call; SIGKILL after


def test_worker_holds_no_parent_end():
    """The worker closes the parent's end of its socketpair (inherited at fork), so a dead
    parent is an EOF to it."""
    with Pool() as p:
        p.run(_parse("a = socket(AF_INET, SOCK_STREAM, uid=1000)\nlisten(a, 1)\n"))
        w = p.worker
        ours = f"socket:[{os.fstat(w.conn.fileno()).st_ino}]"
        theirs = {os.readlink(f"/proc/{w.proc.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{w.proc.pid}/fd")}
        assert ours not in theirs
        assert any(t.startswith("socket:[") for t in theirs)  # its own end


def _parse(text: str):
    from harness.parser import parse_text

    return parse_text("x.scn", text)
