"""What a killed `sockharness kernels` run can leave behind, and reaping it on the next start.

QEMU and virtiofsd die with the thread that started them (PR_SET_PDEATHSIG). A boot's temp
folder (initramfs, virtiofsd socket) is named sockh-vm-<pid>-<start>- after its owner, so a
later run removes those whose owner is gone, and only those.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psutil

from netns.namespace import start_stamp

PREFIX = "sockh-vm-"


def temp_prefix() -> str:
    pid = os.getpid()
    return f"{PREFIX}{pid}-{start_stamp(pid)}-"


def _owner_alive(name: str) -> bool:
    try:
        pid_text, stamp = name[len(PREFIX):].split("-")[:2]
        return start_stamp(int(pid_text)) == stamp
    except (ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def reap_stale(tmp: Path | None = None) -> list[str]:
    """Remove boot folders whose owning run is gone; the names removed."""
    root = Path(tmp or tempfile.gettempdir())
    gone = []
    for d in root.glob(PREFIX + "*"):
        if d.is_dir() and not _owner_alive(d.name):
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name)
    return gone
