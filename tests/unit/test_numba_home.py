"""Without a writable HOME or source tree every command still starts (harness/_numba_cache.py):
numba's cache goes to this user's own folder in the temp dir, reused by the next run, and a
folder of that name someone else controls is never used (a private one, removed at exit)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
HASH = ("from harness.calibrate import jit_inet_ehashfn; import harness; "
        "print(harness.__file__); print(jit_inet_ehashfn(1, '10.0.0.1', 80, '192.0.2.1', 1, True))")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of the sources where no folder numba looks for can be made, even by root: each
    __pycache__ is a file, HOME lies under a file; only the temp dir (TMPDIR) is writable."""
    src = tmp_path / "src"
    for package in ("harness", "model", "netns"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for folder in [src, *(p for p in src.rglob("*") if p.is_dir())]:
        (folder / "__pycache__").write_text("not a folder\n")
    (tmp_path / "blocked").write_text("a file: nothing can be made under it\n")
    (tmp_path / "tmp").mkdir()
    return tmp_path


def _run(tree: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "XDG_"))}
    env.update(HOME=str(tree / "blocked" / "home"), TMPDIR=str(tree / "tmp"),
               PYTHONPATH=str(tree / "src"), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], cwd=tree / "src", env=env, capture_output=True,
                          text=True, timeout=300)


def _shared(tree: Path) -> Path:
    return tree / "tmp" / f"sockharness-numba-{os.geteuid()}"


def test_cli_starts_without_home_or_writable_tree(tree):
    r = _run(tree, "-m", "harness", "--version")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sockharness "), r.stdout
    assert "Traceback" not in r.stderr


def test_cache_goes_to_our_own_temp_folder_and_is_reused(tree):
    from model.jhash import inet_ehashfn

    first = _run(tree, "-c", HASH)
    assert first.returncode == 0, first.stderr
    path, value = first.stdout.split()
    assert path == str(tree / "src" / "harness" / "__init__.py")  # the copy, not the checkout
    assert int(value) == inet_ehashfn(1, "10.0.0.1", 80, "192.0.2.1", 1, True)
    shared = _shared(tree)
    st = os.lstat(shared)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    index = sorted(shared.rglob("calibrate._ehash-*.nbi"))
    assert len(index) == 1, sorted(shared.rglob("*"))
    stamp = index[0].stat().st_mtime_ns
    second = _run(tree, "-c", HASH)
    assert second.returncode == 0 and second.stdout == first.stdout, second.stderr
    assert sorted(shared.rglob("calibrate._ehash-*.nbi")) == index
    assert index[0].stat().st_mtime_ns == stamp  # loaded, not compiled and written again
    assert sorted(p.name for p in (tree / "tmp").iterdir()) == [shared.name]  # nothing else left


def test_a_folder_of_that_name_we_do_not_control_is_not_used(tree):
    """A symlink (another user could plant one) is not followed; a private folder is used and
    removed at exit, and the link's target is left untouched."""
    elsewhere = tree / "elsewhere"
    elsewhere.mkdir()
    _shared(tree).symlink_to(elsewhere)
    r = _run(tree, "-c", HASH)
    assert r.returncode == 0, r.stderr
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in (tree / "tmp").iterdir()) == [_shared(tree).name]  # private one gone


def test_writable_tree_keeps_numbas_default(tmp_path):
    """With a writable __pycache__ nothing is redirected (numba's own first choice stays)."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(HOME=str(tmp_path / "no-such-home"), TMPDIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-c", "import harness, os; print(os.environ.get('NUMBA_CACHE_DIR'))"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if not os.access(ROOT / "harness" / "__pycache__", os.W_OK):
        pytest.fail("the checkout's harness/__pycache__ is not writable: this test needs it to be")
    assert r.stdout.strip() == "None"
    assert list(tmp_path.iterdir()) == []
