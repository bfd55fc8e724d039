"""The command line: exit codes and clear errors (never a traceback) for bad input."""

from __future__ import annotations

import subprocess
import sys
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
