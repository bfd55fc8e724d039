"""Named network namespaces owned by this process, and reaping those of dead runs.

A name is `sockh-<pid>-<start>-<n>`: the owner's PID and start time (so a reused PID is not
mistaken for the owner) and a counter. Namespaces are bind mounts under /run/netns, so they
outlive a killed owner; `reap_stale` removes those whose owner is gone, after killing any worker
of ours still in one (a name removed over a live process would hide it, its namespace and its
TUN devices from `ip netns list`).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import time

import psutil
from pyroute2 import netns as _netns

PREFIX = "sockh-"
WORKER_COMM = "sockh-worker"  # a worker's /proc/PID/comm (mark_worker)
PR_SET_NAME = 15
KILL_TIMEOUT = 5.0  # how long the reaper waits for a killed worker to exit
_counter = itertools.count()


def start_stamp(pid: int) -> str:
    """A process's start time as a short stamp: with its PID, names it across PID reuse."""
    return format(int(psutil.Process(pid).create_time() * 100), "x")


def new_name() -> str:
    """A fresh name owned by this process."""
    pid = os.getpid()
    return f"{PREFIX}{pid}-{start_stamp(pid)}-{next(_counter)}"


def owner_alive(name: str) -> bool:
    """Is the process that made this namespace still running? A zombie is not: it has exited
    (a killed run whose parent has not waited for it yet), though psutil still reports its
    start time."""
    try:
        pid_text, stamp, _ = name[len(PREFIX):].split("-")
        pid = int(pid_text)
    except ValueError:
        return False
    try:
        return start_stamp(pid) == stamp and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def mark_worker() -> None:
    """Name the calling (single-threaded) worker WORKER_COMM (PR_SET_NAME), so the reaper can
    tell a worker that outlived its parent from anyone else's process in a stale namespace."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NAME, WORKER_COMM.encode(), 0, 0, 0)


def is_our_worker(proc: psutil.Process) -> bool:
    """A worker of ours: named by mark_worker, or (a worker of an older run) carrying the
    command line of the sockharness run it was forked from (`.../sockharness run ...`,
    `python -m harness ...`). Its ancestry says nothing: a worker whose parent died is PID 1's."""
    try:
        if proc.name() == WORKER_COMM:
            return True
        argv = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return (any(os.path.basename(a) == "sockharness" for a in argv)
            or any(a == "-m" and b == "harness" for a, b in zip(argv, argv[1:], strict=False)))


def netns_id(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a network namespace file (/run/netns/NAME, /proc/PID/task/TID/ns/net)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _in_netns(pid: int, ns: tuple[int, int]) -> bool:
    """Has process `pid` a thread in namespace `ns`? (A zombie has none: it left at exit.)"""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    return any(netns_id(f"/proc/{pid}/task/{tid}/ns/net") == ns for tid in tids)


def processes_in(ns: tuple[int, int]) -> list[psutil.Process]:
    """The live processes with a thread in namespace `ns`."""
    found = []
    for pid in psutil.pids():
        if not _in_netns(pid, ns):
            continue
        try:
            proc = psutil.Process(pid)  # from here on PID reuse is caught (its start time)
        except psutil.NoSuchProcess:
            continue
        if _in_netns(pid, ns):  # still: the same process as found, not a new one on its PID
            found.append(proc)
    return found


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _kill(procs: list[psutil.Process], timeout: float = KILL_TIMEOUT) -> bool:
    """SIGKILL each process by its PID (psutil refuses a PID reused since) and wait until all
    have exited; False if one is still running after `timeout` seconds."""
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    deadline = time.monotonic() + timeout
    while any(_running(p) for p in procs):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def ours() -> list[str]:
    """Every namespace with our prefix, whoever owns it."""
    return sorted(n for n in _netns.listnetns() if n.startswith(PREFIX))


def create(name: str) -> None:
    _netns.create(name)


def remove(name: str) -> None:
    """Remove a namespace; its sockets and TUN devices go when the last process leaves it."""
    try:
        _netns.remove(name)
    except FileNotFoundError:
        pass


def remove_owned() -> list[str]:
    """Remove every namespace this process made (a last sweep for any interrupted creation)."""
    mine = f"{PREFIX}{os.getpid()}-"
    gone = [n for n in ours() if n.startswith(mine)]
    for name in gone:
        remove(name)
    return gone


def reap_stale() -> list[str]:
    """Remove namespaces left by runs whose owner died (kill -9); returns their names.

    A process still in such a namespace is killed first if it is our worker (one that outlived
    its parent); if anyone else's process is in it, the namespace and its name are left alone,
    so `ip netns list` still shows what lives on."""
    reaped = []
    for name in ours():
        if owner_alive(name):
            continue
        ns = netns_id(os.path.join(_netns.NETNS_RUN_DIR, name))
        inside = processes_in(ns) if ns is not None else []
        if any(_running(p) and not is_our_worker(p) for p in inside):
            continue  # anyone else's process: not ours to kill, nor its namespace to hide
        if inside and not _kill(inside):
            continue
        remove(name)
        reaped.append(name)
    return reaped


def enter(name: str) -> None:
    """Move the calling process (a single-threaded worker) into the namespace for good."""
    _netns.setns(name)


# The namespace this run started in: the host's, as far as this run is concerned. Recorded at
# import, in the parent, before any worker forks and enters its own namespace.
ORIGIN_NETNS = os.stat("/proc/self/ns/net").st_ino


def current_is_host() -> bool:
    """True while this thread is still in the network namespace the run started in."""
    return os.stat("/proc/thread-self/ns/net").st_ino == ORIGIN_NETNS
