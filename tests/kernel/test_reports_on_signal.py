"""A kernel run cut short still leaves its reports: after SIGTERM, and after its namespace
worker dies, the JSON and JUnit XML of what ran are written, marked incomplete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from netns import namespace

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).parents[2]


def _start(out: Path, xml: Path) -> subprocess.Popen:
    """A `sockharness run` on both backends, returned once 50 scenarios have finished."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "-q", "--no-minimize", "--json", str(out),
         "--junit", str(xml), "tests/scenarios", "tests/scenarios"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    for line in proc.stdout:
        if line.startswith("[50/"):
            return proc
    proc.kill()
    raise AssertionError(f"the run ended before 50 scenarios: {proc.communicate()}")


def _worker_of(proc: subprocess.Popen) -> int:
    """The PID of the run's namespace worker: the process in the namespace the run made."""
    names = [n for n in namespace.ours() if n.startswith(f"{namespace.PREFIX}{proc.pid}-")]
    assert len(names) == 1, names
    inside = namespace.processes_in(namespace.netns_id(f"/run/netns/{names[0]}"))
    assert len(inside) == 1 and inside[0].ppid() == proc.pid, inside  # ours: the run's child
    return inside[0].pid


def _reports(out: Path, xml: Path) -> tuple[dict, ET.Element]:
    data = json.loads(out.read_text())
    root = ET.parse(xml).getroot()
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert data["complete"] is False and props["complete"] == "false"
    assert props["incomplete"] == data["incomplete"]
    ran = [s for s in data["scenarios"] if not s["error"]]
    assert len(ran) >= 50 and data["summary"]["kernel_steps"] > 0
    return data, root


@pytest.mark.native_speed("waits for 50 scenarios of a `sockharness run`, minutes under TCG")
def test_sigterm_mid_run_writes_reports_marked_incomplete(tmp_path):
    out, xml = tmp_path / "run.json", tmp_path / "run.xml"
    proc = _start(out, xml)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    data, root = _reports(out, xml)
    assert data["incomplete"].startswith("terminated (SIGTERM) after ")
    assert data["backend"] == "both"
    assert root.get("errors") == "1"  # the run's own: no scenario failed
    assert not [n for n in namespace.ours() if n.startswith(f"{namespace.PREFIX}{proc.pid}-")]


@pytest.mark.native_speed("waits for 50 scenarios of a `sockharness run`, minutes under TCG")
def test_worker_crash_writes_reports_with_the_error(tmp_path):
    out, xml = tmp_path / "run.json", tmp_path / "run.xml"
    proc = _start(out, xml)
    worker = _worker_of(proc)
    os.kill(worker, signal.SIGKILL)  # a worker the run started, by its PID
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert "Traceback" not in err and f"namespace worker {worker} died" in err
    data, root = _reports(out, xml)
    assert data["incomplete"].startswith(f"the kernel backend failed: namespace worker {worker} died")
    failed = [s for s in data["scenarios"] if s["error"]]
    assert len(failed) == 1 and failed[0]["agreed"] is False and failed[0]["steps"] == []
    assert data["summary"]["errors"] == 1
    assert root.get("errors") == "2"  # the scenario it died in, and the run cut short
    assert sum(1 for c in root.iter("testcase") if c.find("error") is not None) == 2
