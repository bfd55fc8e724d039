"""The command line: exit codes and clear errors (never a traceback) for bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def sockharness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
    )


def write(tmp_path: Path, text: str, name: str = "s.scn") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1)\n", ":2:9: expected an address"),
        ("a = socket(AF_INET, SOCK_STREAM)\nfly(a)\n", ":2:1: unknown verb 'fly'"),
        ("a = socket(AF_INET, SOCK_STREAM)\nsetsockopt(a, SO_NOPE, 1)\n", ":2:15: unknown option 'SO_NOPE'"),
    ],
)
def test_bad_scenario_exits_2_with_location(tmp_path, text, message):
    path = write(tmp_path, text)
    r = sockharness("run", "--backend", "model", path)
    assert r.returncode == 2
    assert f"{path}{message}" in r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_missing_file_and_unknown_flag_exit_2(tmp_path):
    r = sockharness("run", str(tmp_path / "nope.scn"))
    assert r.returncode == 2 and "no such file or folder" in r.stderr and "Traceback" not in r.stderr
    r = sockharness("run", "--frobnicate", str(tmp_path))
    assert r.returncode == 2 and "unrecognized arguments" in r.stderr
    r = sockharness("run", "--profile", "2.4", str(ROOT / "tests/scenarios/errors"))
    assert r.returncode == 2 and "unknown profile" in r.stderr


def test_model_backend_checks_expectations_and_exits_1_on_divergence(tmp_path):
    good = write(tmp_path, "a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:80) = 0\n", "good.scn")
    bad = write(tmp_path, "a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:80) = EADDRINUSE\n", "bad.scn")
    assert sockharness("run", "--backend", "model", good).returncode == 0
    r = sockharness("run", "--backend", "model", bad)
    assert r.returncode == 1
    assert "line 2: bind(a, 10.0.0.1:80) = EADDRINUSE" in r.stdout
    assert "model 0 != expected EADDRINUSE" in r.stdout


def test_explain_gives_a_reason_per_step():
    r = sockharness("explain", str(ROOT / "tests/scenarios/listen/relisten-after-failure.scn"))
    assert r.returncode == 0, r.stderr
    assert "listen(b, 5) = EADDRINUSE" in r.stdout
    assert "inet_csk_listen_start: get_port failed: inet_csk_bind_conflict: conflicts with a" in r.stdout


def test_kernel_backend_without_root_exits_2(monkeypatch, capsys):
    # In-process, with geteuid answering as an unprivileged user would (the interpreter under
    # /root is not executable by another uid, so a real drop of privileges cannot run it).
    from harness import cli, worker

    monkeypatch.setattr(worker.os, "geteuid", lambda: 1000)
    code = cli.main(["run", "--backend", "both", str(ROOT / "tests/scenarios/errors")])
    err = capsys.readouterr().err
    assert code == 2 and "needs root" in err and "--backend model" in err


def test_report_paths_are_checked_before_anything_runs(tmp_path):
    # a folder, or a file in a folder that does not exist: exit 2 at once, nothing created
    # (the scenario path does not exist either: the report path is what is checked first)
    missing = tmp_path / "nope.scn"
    r = sockharness("run", "--backend", "model", "--json", str(tmp_path), str(missing))
    assert r.returncode == 2 and "--json" in r.stderr and "is a folder" in r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    r = sockharness("run", "--backend", "model", "--junit", str(tmp_path / "a" / "b.xml"), str(missing))
    assert r.returncode == 2 and "no folder" in r.stderr and not (tmp_path / "a").exists()
    top = Path("/sockharness-no-such-folder")
    assert not top.exists()
    r = sockharness("run", "--backend", "model", "--json", str(top / "r.json"), str(missing))
    assert r.returncode == 2 and not top.exists()
    same = str(tmp_path / "r.out")
    r = sockharness("run", "--backend", "model", "--json", same, "--junit", same, str(missing))
    assert r.returncode == 2 and "same file" in r.stderr
    r = sockharness("run", "--backend", "model", "--junit", same, "--html", same, str(missing))
    assert r.returncode == 2 and "--junit and --html name the same file" in r.stderr
    r = sockharness("run", "--backend", "model", "--html", str(tmp_path), str(missing))
    assert r.returncode == 2 and "--html" in r.stderr and "is a folder" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="kernels needs root before it looks at its options")
def test_kernels_checks_its_kcidb_path_before_any_boot(tmp_path):
    r = sockharness("kernels", "--versions", "6.12", "--out", str(tmp_path / "k"),
                    "--kcidb", str(tmp_path / "no" / "k.json"))
    assert r.returncode == 2 and "--kcidb" in r.stderr and "no folder" in r.stderr
    assert not (tmp_path / "k").exists() and "Traceback" not in r.stderr
    r = sockharness("kernels", "--kcidb", str(tmp_path / "k.json"), "--kcidb-origin", "My CI")
    assert r.returncode == 2 and "[a-z0-9_]+" in r.stderr and "Traceback" not in r.stderr


def test_model_only_run_reports_unchecked_steps(tmp_path):
    path = write(tmp_path, "a = socket(AF_INET, SOCK_STREAM) = 0\nbind(a, 10.0.0.1:80)\nlisten(a, 1) = 0\n")
    out = tmp_path / "r.json"
    r = sockharness("run", "--backend", "model", "--json", str(out), path)
    assert r.returncode == 0, r.stderr
    assert "2 steps checked: 2 agreed, 0 diverged; 1 unchecked" in r.stdout
    data = json.loads(out.read_text())
    assert data["complete"] is True
    assert (data["summary"]["steps_checked"], data["summary"]["steps_unchecked"]) == (2, 1)
    # nothing to compare at all: not a pass
    bare = write(tmp_path, "a = socket(AF_INET, SOCK_STREAM)\nlisten(a, 1)\n", "bare.scn")
    r = sockharness("run", "--backend", "model", bare)
    assert r.returncode == 1 and "no step was checked" in r.stderr


def test_explain_marks_where_the_file_states_another_value(tmp_path):
    path = write(tmp_path, "a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:80) = EADDRINUSE\n"
                 "listen(a, 1) = 0\n")
    r = sockharness("explain", path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(ln.strip() == "2  bind(a, 10.0.0.1:80) = 0   [DIFFERS: the file states EADDRINUSE]"
               for ln in lines), r.stdout
    assert any(ln.strip() == "3  listen(a, 1) = 0" for ln in lines)  # agrees: no mark
    assert "1 step(s) where the model's value DIFFERS" in r.stdout


def test_repeat_gives_distinct_junit_names(tmp_path):
    path = write(tmp_path, "a = socket(AF_INET, SOCK_STREAM) = 0\n")
    out = tmp_path / "j.xml"
    r = sockharness("run", "--backend", "model", "--repeat", "3", "--junit", str(out), path)
    assert r.returncode == 0, r.stderr
    names = [c.get("name") for c in ET.parse(out).getroot().iter("testcase")]
    assert names == [f"{path} [run {k} of 3]" for k in (1, 2, 3)]


def test_control_characters_of_scenarios_are_escaped_in_the_terminal(tmp_path):
    path = write(tmp_path, "a = socket(AF_INET, SOCK_STREAM)  # \x1b[2J\nlisten(a, 1) = EINVAL\n",
                 "bad\x07name.scn")
    r = sockharness("run", "--backend", "model", path)
    assert r.returncode == 1
    assert "\x07" not in r.stdout and "\x1b" not in r.stdout
    assert "bad\\x07name.scn" in r.stdout and "# \\x1b[2J" in r.stdout
    r = sockharness("explain", path)
    assert "\x07" not in r.stdout and "bad\\x07name.scn" in r.stdout


def test_long_minimization_shows_progress_on_stderr_and_not_under_q(tmp_path):
    text = (ROOT / "tests/scenarios/groups/256-plain.scn").read_text()
    path = write(tmp_path, text.replace("listen(s200, 4096) = 0\n", "listen(s200, 4096) = EADDRINUSE\n"))
    r = sockharness("run", "--backend", "model", path)
    assert r.returncode == 1
    assert "minimizing " in r.stderr and "candidates" in r.stderr
    assert "minimal reproducer (no single step can be removed" in r.stdout
    r = sockharness("run", "--backend", "model", "-q", "--minimize-budget", "4", path)
    assert r.returncode == 1 and "minimizing" not in r.stderr
    assert "reduced reproducer, not shown minimal (" in r.stdout and "budget hit" in r.stdout


def _run_until_progress(args: list[str]) -> subprocess.Popen:
    """Start a long model-only run; return once it has finished 50 scenarios."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("[50/"):
            return proc
    proc.kill()
    raise AssertionError(f"the run ended early: {proc.communicate()}")


@pytest.mark.parametrize("sig, code, why", [(signal.SIGTERM, 143, "terminated (SIGTERM)"),
                                            (signal.SIGINT, 130, "interrupted (Ctrl-C)")])
def test_signal_mid_run_still_writes_reports_marked_incomplete(tmp_path, sig, code, why):
    out, xml = tmp_path / "r.json", tmp_path / "r.xml"
    proc = _run_until_progress(["--backend", "model", "-q", "--repeat", "40", "--json", str(out),
                                "--junit", str(xml), "tests/scenarios"])
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and "incomplete" in err
    data = json.loads(out.read_text())
    assert data["complete"] is False and data["incomplete"].startswith(why)
    ran = len(data["scenarios"])
    assert 50 <= ran < 40 * 677 and f"after {ran} of " in data["incomplete"]
    assert data["summary"]["scenarios"] == ran
    root = ET.parse(xml).getroot()
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert props["complete"] == "false" and root.get("errors") == "1"
    assert root.get("tests") == str(ran + 1)  # what ran, and the run's own error
