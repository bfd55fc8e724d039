"""The reaper's test of a namespace's owner: a zombie is dead (psutil still reports its start
time, so the name's PID and stamp match)."""

from __future__ import annotations

import os
import time

import psutil

from netns import namespace


def test_a_zombie_owner_is_dead():
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the owner: waits for the word, then exits
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    try:
        name = f"{namespace.PREFIX}{pid}-{namespace.start_stamp(pid)}-0"
        assert namespace.owner_alive(name)  # running: alive
        os.close(w)  # the child exits; not reaped (no waitpid) it stays a zombie
        w = -1
        deadline = time.monotonic() + 10
        while psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        assert namespace.start_stamp(pid) in name  # the stamp still matches...
        assert not namespace.owner_alive(name)  # ...yet a zombie owns nothing
    finally:
        if w >= 0:
            os.close(w)
        os.waitpid(pid, 0)
    assert not namespace.owner_alive(name)  # reaped: gone


def test_a_reused_pid_is_not_the_owner():
    name = f"{namespace.PREFIX}{os.getpid()}-0-0"  # our PID, another start time
    assert not namespace.owner_alive(name)
    assert namespace.owner_alive(f"{namespace.PREFIX}{os.getpid()}-{namespace.start_stamp(os.getpid())}-0")
