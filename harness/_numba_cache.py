"""Where numba caches harness/calibrate.py's compiled code, chosen before numba is imported.

njit(cache=True) raises at import when no cache folder numba looks for is writable (its
numba/core/caching.py locators: NUMBA_CACHE_DIR, the source's __pycache__, then
$XDG_CACHE_HOME or ~/.cache), e.g. a read-only tree and no HOME: every command crashed. Then
NUMBA_CACHE_DIR is set to this user's own folder in the temp dir, reused by the next run (or,
when that name is taken by someone else, a private one removed at exit); with no writable
place at all, CACHE is False and calibrate.py compiles without caching.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

ENV = "NUMBA_CACHE_DIR"
_IN_TREE = Path(__file__).parent / "__pycache__"  # numba's in-tree place for calibrate.py


def _writable(folder: Path) -> bool:
    """numba's own test (caching.py _CacheLocator.ensure_cache_path): make it, write a file."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def _user_wide() -> Path | None:
    """numba's user-wide folder (appdirs.user_cache_dir), when the folder it lives in exists:
    a HOME that is not there is not created."""
    base = os.environ.get("XDG_CACHE_HOME")
    home = Path(base) if base else Path(os.path.expanduser("~"))
    if not home.is_absolute() or not home.is_dir():
        return None
    return (home if base else home / ".cache") / "numba"


def _ours(folder: Path) -> bool:
    """A real folder (no symlink) of this user that no one else may write: numba loads
    pickled code from its cache, so a folder another user controls is never used."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def _fallback() -> Path | None:
    """<tmp>/sockharness-numba-<euid>, made 0700 and reused; else a private temp folder
    removed when this process exits; None when no temp folder can be written."""
    try:
        tmp = Path(tempfile.gettempdir())
    except FileNotFoundError:  # no usable temp folder at all
        return None
    shared = tmp / f"sockharness-numba-{os.geteuid()}"
    try:
        shared.mkdir(mode=0o700)
    except OSError:
        pass  # there already (ours from an earlier run, or not: checked next)
    if _ours(shared) and _writable(shared):
        return shared
    try:
        private = Path(tempfile.mkdtemp(prefix="sockharness-numba-", dir=tmp))
    except OSError:
        return None
    owner = os.getpid()  # a forked child that exits must not remove its parent's folder
    atexit.register(lambda: os.getpid() == owner and shutil.rmtree(private, ignore_errors=True))
    return private


def choose() -> bool:
    """Set NUMBA_CACHE_DIR when numba itself would find no writable cache folder; True when
    caching is possible."""
    given = os.environ.get(ENV)
    if given and _writable(Path(given)):
        return True
    user = _user_wide()
    if _writable(_IN_TREE) or (user is not None and _writable(user)):
        return True  # numba finds it (an unwritable NUMBA_CACHE_DIR it skips by itself)
    folder = _fallback()
    if folder is None:
        return False
    os.environ[ENV] = str(folder)
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba loaded already: its config was read from the old value
        config.CACHE_DIR = str(folder)
    return True


CACHE = choose()  # at import: harness/__init__.py imports this before anything imports numba
