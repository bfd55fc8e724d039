"""What /proc says of processes a test watches: the TUN devices their descriptors hold open.
Shared by tests/kernel and tests/soak (tests/ is on sys.path through tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def tun_fds(pids: Iterable[int]) -> set[tuple[int, int, str]]:
    """(pid, fd, device) of every open /dev/net/tun attached to a device: while one is open,
    its TUN device exists (the harness's are not persistent). A process gone is skipped."""
    found = set()
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != "/dev/net/tun":
                    continue
                info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            except OSError:
                continue
            for line in info.splitlines():
                if line.startswith("iff:"):
                    found.add((pid, int(fd), line.split()[1]))
    return found
