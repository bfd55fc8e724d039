"""Named network namespaces owned by this process, and reaping those of dead runs.

A name is `sockh-<pid>-<start>-<n>`: the owner's PID and start time (so a reused PID is not
mistaken for the owner) and a counter. Namespaces are bind mounts under /run/netns, so they
outlive a killed owner; `reap_stale` removes those whose owner is gone.
"""

from __future__ import annotations

import itertools
import os

import psutil
from pyroute2 import netns as _netns

PREFIX = "sockh-"
_counter = itertools.count()


def start_stamp(pid: int) -> str:
    """A process's start time as a short stamp: with its PID, names it across PID reuse."""
    return format(int(psutil.Process(pid).create_time() * 100), "x")


def new_name() -> str:
    """A fresh name owned by this process."""
    pid = os.getpid()
    return f"{PREFIX}{pid}-{start_stamp(pid)}-{next(_counter)}"


def owner_alive(name: str) -> bool:
    """Is the process that made this namespace still running?"""
    try:
        pid_text, stamp, _ = name[len(PREFIX):].split("-")
        pid = int(pid_text)
    except ValueError:
        return False
    try:
        return start_stamp(pid) == stamp
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


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
    """Remove namespaces left by runs whose owner died (kill -9); returns their names."""
    reaped = []
    for name in ours():
        if not owner_alive(name):
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
