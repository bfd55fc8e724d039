"""report.py: checked / agreed / unchecked counts, the JSON, and JUnit XML that parses."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from harness.compare import ScenarioResult, compare
from harness.minimize import Reduction, Status
from harness.parser import parse_text
from harness.report import Summary, divergence_text, summary_table, to_json, visible, write_junit
from harness.runner import Backend, Runner
from model.outcome import Outcome
from model.profiles import LINUX_6_18

MIXED = """a = socket(AF_INET, SOCK_STREAM) = 0
bind(a, 10.0.0.1:8080)
listen(a, 5) = 0
"""
BARE = "a = socket(AF_INET, SOCK_STREAM)\nlisten(a, 5)\n"
WRONG = "a = socket(AF_INET, SOCK_STREAM)   # bell \x07 and escape \x1b[2J here\nlisten(a, 5) = EINVAL\n"


def model_run(text: str, name: str = "f/s.scn") -> ScenarioResult:
    return Runner(LINUX_6_18, Backend.MODEL).run_one(parse_text(Path(name), text))


def test_model_only_tally_counts_unchecked_steps_apart():
    t = Summary.of([model_run(MIXED), model_run(BARE, "f/bare.scn"), model_run(WRONG, "f/w.scn")]).total
    assert (t.scenarios, t.agreed, t.diverged, t.unchecked) == (3, 1, 1, 1)
    assert t.steps == 7
    assert (t.steps_checked, t.steps_agreed, t.steps_diverged, t.steps_unchecked) == (3, 2, 1, 4)
    assert t.steps_checked == t.steps_agreed + t.steps_diverged
    assert t.steps == t.steps_checked + t.steps_unchecked


def test_full_run_counts_every_step_checked():
    sc = parse_text("f/s.scn", MIXED)
    outcomes = [Outcome("0"), Outcome("0"), Outcome("0")]
    t = Summary.of([compare(sc, outcomes, outcomes)]).total
    assert (t.steps, t.steps_checked, t.steps_agreed, t.steps_unchecked) == (3, 3, 3, 0)
    assert (t.agreed, t.unchecked) == (1, 0)


def test_summary_table_has_the_split():
    table = summary_table(Summary.of([model_run(MIXED), model_run(BARE, "f/bare.scn")]))
    header, _, row = table.splitlines()[:3]
    assert header.split() == ["feature", "scenarios", "skipped", "agreed", "diverged", "unchecked",
                              "steps", "checked", "agreed", "diverged", "unchecked", "kernel",
                              "exact", "property"]
    assert row.split() == ["f", "2", "0", "1", "0", "1", "5", "2", "2", "0", "3", "0", "2", "0"]
    crashed = ScenarioResult(parse_text("f/c.scn", BARE), error="namespace worker 7 died")
    assert "errors" in summary_table(Summary.of([crashed])).splitlines()[0].split()


def test_json_keeps_its_keys_and_adds_the_split():
    data = to_json([model_run(MIXED), model_run(BARE, "f/bare.scn")], {"profile": "6.18"})
    old_summary = {"scenarios", "skipped", "agreed", "diverged", "steps", "steps_agreed",
                   "steps_diverged", "kernel_steps", "exact", "property", "model_steps"}
    assert old_summary <= set(data["summary"])
    assert data["summary"]["steps_checked"] == 2 and data["summary"]["steps_unchecked"] == 3
    assert data["summary"]["steps_agreed"] == 2 and data["summary"]["unchecked"] == 1
    assert data["features"]["f"]["steps_unchecked"] == 3
    sc = data["scenarios"][0]
    assert {"path", "feature", "skipped", "agreed", "sysctls", "steps"} <= set(sc)
    assert sc["checked"] is True and data["scenarios"][1]["checked"] is False
    step = sc["steps"][1]
    assert {"line", "call", "expect", "expect_from", "model", "kernel", "checks", "problems"} <= set(step)
    assert step["checked"] is False and "no expectation stated" in step["unchecked"]
    assert sc["steps"][0]["checked"] is True and sc["steps"][0]["unchecked"] is None
    json.dumps(data)


def test_junit_with_control_characters_parses(tmp_path):
    # before: ElementTree wrote the bell and escape raw, and XML 1.0 cannot hold them
    res = model_run(WRONG, "f\x07ature/w\x1b.scn")
    assert res.divergent
    out = tmp_path / "j.xml"
    write_junit(out, [res], {"profile": "6.18", "kernel_release": "x\x01"})
    root = ET.parse(out).getroot()
    case = root.find("testcase")
    assert case.get("name") == "f\\x07ature/w\\x1b.scn" and case.get("classname") == "f\\x07ature"
    failure = case.find("failure")
    assert "bell \\x07 and escape \\x1b[2J" in failure.text
    assert root.get("failures") == "1"


def test_junit_time_errors_and_distinct_names_under_repeat(tmp_path):
    sc = parse_text("f/s.scn", MIXED)
    runner = Runner(LINUX_6_18, Backend.MODEL)
    runs = [runner.run_one(sc), runner.run_one(sc)]
    crashed = ScenarioResult(parse_text("f/c.scn", BARE), error="namespace worker 7 died\ntraceback")
    out = tmp_path / "j.xml"
    write_junit(out, [*runs, crashed], {"profile": "6.18"})
    root = ET.parse(out).getroot()
    cases = root.findall("testcase")
    names = [c.get("name") for c in cases]
    assert len(set(names)) == len(names) == 3
    assert names[:2] == ["f/s.scn [run 1 of 2]", "f/s.scn [run 2 of 2]"]
    assert root.get("errors") == "1" and root.get("tests") == "3"
    assert cases[2].find("error").get("message") == "namespace worker 7 died"
    assert float(root.get("time")) >= 0 and all(float(c.get("time")) >= 0 for c in cases)
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert props["steps_checked"] == "4" and props["steps_unchecked"] == "2"


def test_junit_scenario_nothing_checked_is_skipped_not_passed(tmp_path):
    out = tmp_path / "j.xml"
    write_junit(out, [model_run(BARE, "f/bare.scn")], {})
    root = ET.parse(out).getroot()
    skipped = root.find("testcase").find("skipped")
    assert skipped is not None and "nothing checked" in skipped.get("message")
    assert root.get("skipped") == "1"


def test_incomplete_run_is_marked(tmp_path):
    meta = {"profile": "6.18", "complete": False, "incomplete": "terminated (SIGTERM) after 1 of 9"}
    out = tmp_path / "j.xml"
    write_junit(out, [model_run(MIXED)], meta)
    root = ET.parse(out).getroot()
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert props["complete"] == "false" and "SIGTERM" in props["incomplete"]
    assert root.get("errors") == "1"
    last = root.findall("testcase")[-1]
    assert "run incomplete: terminated (SIGTERM)" in last.find("error").get("message")
    assert to_json([], meta)["complete"] is False


def test_terminal_text_escapes_control_characters():
    res = model_run(WRONG, "f/w\x1b.scn")
    text = divergence_text(res)
    assert "\x1b" not in text and "\x07" not in text
    assert "DIVERGED f/w\\x1b.scn" in text and "bell \\x07" in text
    assert visible("tab\tnew\nline\r\x00\x7f\x9b\udcff") == "tab\tnew\nline\\x0d\\x00\\x7f\\x9b\\udcff"


def test_divergence_text_labels_the_reproducer():
    res = model_run(WRONG)
    minimal = Reduction("a\n", Status.MINIMAL, 3, 1, 2, 1)
    reduced = Reduction("a\nb\n", Status.REDUCED, 200, 0, 900, 40)
    assert "minimal reproducer (no single step can be removed; 2 -> 1 steps, 3 reruns, " \
           "1 unparsable candidate)" in divergence_text(res, minimal)
    text = divergence_text(res, reduced)
    assert "reduced reproducer, not shown minimal (200 reruns, budget hit; 900 -> 40 steps" in text
    assert "minimal reproducer" not in text


def test_deferred_holds_a_signal_sent_while_another_thread_runs():
    """A SIGTERM from outside lands in whichever thread; the block still finishes first."""
    import os
    import signal
    import threading

    from harness.signals import deferred

    seen: list[str] = []
    stop = threading.Event()
    t = threading.Thread(target=stop.wait, daemon=True)
    t.start()
    old = signal.signal(signal.SIGTERM, lambda *_: seen.append("handler"))
    try:
        with deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # bytecodes at which a pending handler would run
                pass
            seen.append("block done")
        assert seen == ["block done", "handler"]
    finally:
        signal.signal(signal.SIGTERM, old)
        stop.set()
