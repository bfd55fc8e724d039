"""Hostile values on the real kernel: the issue's reproducers, which crashed the kernel worker
and aborted the run, are now one-line parse errors (exit 2) or the kernel's own outcome, as the
model says; and a step the worker cannot run costs one scenario, not the run.

(Named *_kernel: tests/unit/test_hostile_values.py holds the cases, and two test modules of
one basename cannot be collected together without __init__.py files.)"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.parser import parse_text
from harness.runner import Backend, Runner
from harness.running import running_profile
from harness.scenario import ListenStep, Scenario, SetsockoptStep, SocketStep
from model.sockopt import SockOpt

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location("hostile_cases", ROOT / "tests/unit/test_hostile_values.py")
CASES = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(CASES)
SOCK = "a = socket(AF_INET, SOCK_STREAM)\n"

# The reproducers that no C program could pass or /proc refuses: (text, line:col).
PARSE_ERRORS = {
    "listen-4294967296": (SOCK + "bind(a, 10.0.0.1:8080)\nlisten(a, 4294967296)\n", "3:11"),
    "uid-4294967295": ("a = socket(AF_INET, SOCK_STREAM, uid=4294967295)\n", "1:34"),
    "uid-4294967296": ("a = socket(AF_INET, SOCK_STREAM, uid=4294967296)\n", "1:34"),
    "uid-minus-1": ("a = socket(AF_INET, SOCK_STREAM, uid=-1)\n", "1:34"),
    "cbpf-payload-4294967296": (SOCK + "setsockopt(a, SO_REUSEPORT, 1)\n"
                                "setsockopt(a, SO_ATTACH_REUSEPORT_CBPF, payload%4294967296)\n", "3:41"),
    "somaxconn-minus-1": ("@sysctl net.core.somaxconn = -1\n" + SOCK, "1:9"),
    "syncookies-unicode-9": ("@sysctl net.ipv4.tcp_syncookies = 𝟗\n" + SOCK, "1:9"),
    "reserved-ports-commas": ("@sysctl net.ipv4.ip_local_reserved_ports = ,,,\n" + SOCK, "1:9"),
    "port-range-comma": ("@sysctl net.ipv4.ip_local_port_range = 40000,40003\n" + SOCK, "1:9"),
}


def sockharness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.mark.parametrize("name", sorted(PARSE_ERRORS))
def test_reproducer_is_a_one_line_parse_error(tmp_path, name):
    text, where = PARSE_ERRORS[name]
    path = tmp_path / f"{name}.scn"
    path.write_text(text)
    r = sockharness("run", str(path))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert lines == [lines[0]] and lines[0].startswith(f"sockharness: {path}:{where}: expected"), r.stderr


def test_reproducer_so_reuseport_4294967295_runs_and_agrees(tmp_path):
    """The whole command: 4294967295 is the int -1 to sk_setsockopt, so SO_REUSEPORT is on."""
    path = tmp_path / "reuseport-u32.scn"
    path.write_text(CASES.MODELLED["reuseport-u32"])
    r = sockharness("run", str(path))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "11 steps checked: 11 agreed, 0 diverged" in r.stdout, r.stdout


@pytest.mark.parametrize("name", sorted(CASES.MODELLED))
def test_modelled_values_give_the_kernels_outcome(pool, name):
    """Each step as stated (recorded on 6.18), on the kernel and in the model."""
    sc = parse_text(f"hostile/{name}.scn", CASES.MODELLED[name])
    r = Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one(sc)
    assert r.agreed, [(s.step.line, s.problems) for s in r.divergent]
    assert all(s.kernel is not None for s in r.steps)


def test_sysctls_that_check_each_other_are_restored(pool):
    """ip_local_port_range and ip_unprivileged_port_start refuse a value that crosses the
    other: the worker restores both whichever way round a scenario left them, so the
    namespace is not replaced."""
    before = pool.replaced
    for name in ("ports-privileged-high", "ports-below-1024", "ports-privileged-high"):
        r = Runner(running_profile()[0], Backend.BOTH, 0, pool).run_one(
            parse_text(f"hostile/{name}.scn", CASES.MODELLED[name]))
        assert r.agreed, (name, [(s.step.line, s.problems) for s in r.divergent])
    assert pool.replaced == before


def test_a_step_the_worker_cannot_run_is_one_scenarios_error(pool):
    """A step built past the parser (an option value the executor cannot pass) is that
    scenario's HARNESS_ERROR, the rest NOT_RUN; the worker, its namespace and the run go on."""
    lines = ("a = socket(AF_INET, SOCK_STREAM)", "setsockopt(a, SO_REUSEPORT, x)", "listen(a, 1)")
    bad = Scenario(path=Path("hostile/harness-error.scn"), lines=lines, steps=(
        SocketStep(1, lines[0], None, "a", int(socket.AF_INET), 0),
        SetsockoptStep(2, lines[1], None, "a", SockOpt.SO_REUSEPORT, "x"),
        ListenStep(3, lines[2], None, "a", 1),
    ))
    before = pool.replaced
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool)
    r = runner.run_one(bad)
    kernel = [s.kernel.value for s in r.steps]
    assert kernel[0] == "0"
    assert kernel[1].startswith("HARNESS_ERROR(TypeError: ") and "kernel_backend.py:" in kernel[1], kernel
    assert kernel[2] == "NOT_RUN"
    assert [s.step.line for s in r.divergent] == [2, 3]
    assert r.error.startswith("the kernel backend failed a step: HARNESS_ERROR(TypeError") and not r.agreed
    good = runner.run_one(parse_text("hostile/after.scn", CASES.MODELLED["uid-top"]))
    assert good.agreed, [(s.step.line, s.problems) for s in good.divergent]
    assert pool.replaced == before
