"""Children that die with their parent: namespace workers, QEMU and virtiofsd. A child of ours
never outlives the run that made it, also after a kill -9 of that run."""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # include/uapi/linux/prctl.h
_libc = ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int | None = None) -> None:
    """Have the kernel SIGKILL this process when its parent (thread) dies (PR_SET_PDEATHSIG).
    With `parent`, exit at once if that is no longer the parent: it died before the setting
    took. Every credential change clears the setting (prctl(2); kernel/cred.c:commit_creds), so
    a process that changes its uid arms it again after each change back."""
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_PDEATHSIG): {os.strerror(err)}")
    if parent is not None and os.getppid() != parent:
        os._exit(1)  # orphaned already: no one to report to
