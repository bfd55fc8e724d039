"""The kselftest entry point (tools/testing/selftests/sockharness/sockharness.sh) run for real:
kselftest's exit codes (0 pass, 1 fail, 4 skip; never sockharness's 2) and valid KTAP."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from ktap_spec import parse, totals, validate

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "tools/testing/selftests/sockharness/sockharness.sh"
SMALL = "tests/scenarios/errors/bind-twice-einval.scn tests/scenarios/listen/listen-twice.scn"


def selftest(scenarios: str, *args: str, prefix: tuple[str, ...] = (), cwd: Path | None = None,
             script: Path = SCRIPT):
    """The script as kselftest's runner calls it (from another folder), and its time."""
    env = {k: v for k, v in os.environ.items() if k != "SOCKHARNESS_DIR"}
    env["SOCKHARNESS_SCENARIOS"] = scenarios
    t0 = time.monotonic()
    r = subprocess.run([*prefix, str(script), *args], capture_output=True, text=True, env=env,
                       cwd=cwd or script.parent, timeout=120)
    return r, time.monotonic() - t0


def test_agreeing_scenarios_exit_0_with_valid_ktap(tmp_path):
    r, _ = selftest(SMALL, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert validate(r.stdout) == [], r.stdout
    assert len(parse(r.stdout).leaves()) == 2 and totals(r.stdout)["pass"] == 2


def test_a_wrong_expectation_exits_1(tmp_path):
    bad = tmp_path / "wrong" / "bind-free-port.scn"
    bad.parent.mkdir()
    bad.write_text("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:8080) = EADDRINUSE\n")
    r, _ = selftest(f"{SMALL} {bad}", "--no-minimize")
    assert r.returncode == 1, r.stdout + r.stderr
    assert validate(r.stdout) == []
    wrong = [t for t in parse(r.stdout).leaves() if not t.ok]
    assert [t.description for t in wrong] == [str(bad)]
    assert "# line 2: bind(a, 10.0.0.1:8080) = EADDRINUSE" in r.stdout
    assert totals(r.stdout)["fail"] == 1


def test_a_missing_path_exits_1_not_2(tmp_path):
    r, _ = selftest(str(tmp_path / "nope.scn"))
    assert r.returncode == 1, r.stdout + r.stderr  # sockharness said 2: kselftest would read XFAIL
    assert "no such file or folder" in r.stderr
    assert "# sockharness exited 2" in r.stdout  # after the document: a diagnostic line
    assert validate(r.stdout) == [] and totals(r.stdout)["error"] == 1


def test_not_root_is_a_skip_with_its_reason(tmp_path):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("no setpriv (util-linux) to drop root")
    prefix = (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")
    # a copy in a folder uid 65534 may enter (a clone, and pytest's tmp_path, may be 0700):
    # the script decides on root before it looks for the project
    folder = Path(tempfile.mkdtemp(prefix="sockh-kselftest-"))
    try:
        folder.chmod(0o755)
        script = folder / SCRIPT.name
        shutil.copy(SCRIPT, script)
        script.chmod(0o755)
        r, _ = selftest(SMALL, prefix=prefix, cwd=folder, script=script)
    finally:
        shutil.rmtree(folder)
    assert r.returncode == 4, r.stdout + r.stderr
    assert validate(r.stdout) == []
    (t,) = parse(r.stdout).tests
    assert t.ok and t.directive == "SKIP" and "needs root" in t.diagnostic
    assert totals(r.stdout)["skip"] == 1


def test_no_virtualenv_is_a_skip(tmp_path):
    """SOCKHARNESS_DIR names a project copy without .venv: the script skips, saying where."""
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness" / "cli.py").write_text("")
    env = {**os.environ, "SOCKHARNESS_DIR": str(tmp_path), "SOCKHARNESS_SCENARIOS": SMALL}
    r = subprocess.run([str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 4 and validate(r.stdout) == []
    assert f"no virtualenv at {tmp_path}/.venv" in r.stdout
