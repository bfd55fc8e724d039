"""The suite's own selection (tests/conftest.py) reads markers, not folder names: a checkout
in a folder named "soak" once had every test deselected, so a guest's kernel tests ran none."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).parents[1] / "conftest.py"


@pytest.mark.parametrize("folder", ["soak", "kernel", "browser"], ids=lambda f: f"named-{f.upper()}")
def test_a_checkout_folders_name_selects_nothing(folder, tmp_path):
    tests = tmp_path / folder / "tests"
    tests.mkdir(parents=True)
    shutil.copy(CONFTEST, tests / "conftest.py")
    (tmp_path / folder / "pytest.ini").write_text("[pytest]\nmarkers =\n    kernel: k\n    soak: s\n")
    (tests / "test_plain.py").write_text("def test_plain():\n    pass\n")
    (tests / "test_marked.py").write_text(
        "import pytest\n\n@pytest.mark.soak\ndef test_soaked():\n    pass\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                       cwd=tmp_path / folder, capture_output=True, text=True, timeout=60)
    last = r.stdout.strip().splitlines()[-1]
    assert "1 passed" in last and "1 deselected" in last, r.stdout + r.stderr
