"""Version clauses (`= X   [5.10: Y]`): parsing and its errors, which expectation a run checks,
and `record` writing a kernel's outcomes as its version's clauses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import record
from harness.compare import compare
from harness.model_backend import ModelExecutor
from harness.parser import ScenarioError, parse_text
from harness.report import to_json
from harness.spec import spec_for
from model.profiles import LINUX_5_10, LINUX_6_18, LINUX_7_2, MAINLINE_6_5, with_fields

NETWORK = """a = socket(AF_INET, SOCK_STREAM)
bind(a, 10.0.0.0:8080) = EADDRNOTAVAIL   [5.10: 0]   # the network address
"""


def test_clause_is_the_expectation_of_its_versions():
    step = parse_text("s.scn", NETWORK).steps[1]
    assert step.expect == "EADDRNOTAVAIL" and [str(c) for c in step.versions] == ["[5.10: 0]"]
    assert step.expected((5, 10)) == ("0", "5.10")
    assert step.expected((6, 18)) == ("EADDRNOTAVAIL", "default")
    assert step.expected((6, 1)) == ("EADDRNOTAVAIL", "default")


def test_lists_ranges_and_bracketed_values():
    sc = parse_text("s.scn", "a = socket(AF_INET6, SOCK_STREAM)\n"
                    "getsockname(a) = [::]:0   [5.10, 6.1: [::1]:1] [6.12-6.12: EINVAL] [7.2: EBADF]\n")
    step = sc.steps[1]
    assert step.expected((6, 1)) == ("[::1]:1", "5.10, 6.1")
    assert step.expected((6, 12)) == ("EINVAL", "6.12")
    assert step.expected((7, 2)) == ("EBADF", "7.2")
    assert step.expected((6, 18)) == ("[::]:0", "default")


@pytest.mark.parametrize("tail, col, message", [
    ("= 0 [5.9: EINVAL]", 29, "no recorded kernel profile for version 5.9"),
    ("= 0 [5.10: 0]", 28, "repeats the default"),
    ("= 0 [5.10: EINVAL] [5.10-6.1: EPERM]", 43, "version 5.10 is in two clauses"),
    ("= 0 [6.12-7.2: EINVAL]", 28, "cannot cover 6.18"),
    ("= 0 [6.12-5.10: EINVAL]", 29, "runs backwards"),
    ("= 0 [5.10 EINVAL]", 28, "expected '[VERSIONS: value]'"),
    ("= 0 [5.10: EINVAL", 35, "']' to close the version clause"),
    ("= 0 [5.x: EINVAL]", 29, "expected a kernel version X.Y"),
    ("= 0 [5.10: bogus]", 35, "expected 0 or an errno name"),
    ("= 0 junk", 28, "expected a version clause like [5.10: 0]"),
])
def test_malformed_clauses_name_the_column(tail, col, message):
    with pytest.raises(ScenarioError) as e:
        parse_text("s.scn", f"a = socket(AF_INET, SOCK_STREAM)\nbind(a, 10.0.0.1:8080) {tail}\n")
    assert (e.value.line, e.value.col) == (2, col) and message in e.value.message, str(e.value)


def test_run_checks_the_expectation_of_its_profile():
    sc = parse_text("s.scn", NETWORK)
    for profile, ok in ((LINUX_5_10, True), (LINUX_6_18, True), (LINUX_7_2, True)):
        res = compare(sc, ModelExecutor(profile).run(sc), None, spec_for(profile)[0])
        assert res.agreed is ok, profile.name
    # 5.10's model against 6.18's expectation: the clause is what makes it agree
    res = compare(sc, ModelExecutor(LINUX_5_10).run(sc), None, (6, 18))
    assert res.divergent[0].problems == ["model 0 != expected EADDRNOTAVAIL"]
    res = compare(sc, ModelExecutor(LINUX_6_18).run(sc), None, (5, 10))
    assert res.divergent[0].problems == ["model EADDRNOTAVAIL != expected on 5.10 0"]
    step = to_json([res], {})["scenarios"][0]["steps"][1]
    assert (step["expect"], step["expect_from"]) == ("0", "5.10")


def test_spec_of_profiles():
    assert spec_for(LINUX_7_2) == ((7, 2), "")
    assert spec_for(with_fields(LINUX_5_10, {"migrate_req": "true"}))[0] == (5, 10)
    inferred = with_fields(LINUX_6_18, {})
    assert spec_for(inferred)[0] == (6, 18)
    assert spec_for(MAINLINE_6_5)[0] is None  # no recorded kernel has its rules


SCN = """a = socket(AF_INET, SOCK_STREAM)
b = socket(AF_INET, SOCK_STREAM)   # a comment
bind(a, 10.0.0.1:8080) = 0   [5.10: EINVAL]   # kept
bind(b, 10.0.0.1:8080) = EADDRINUSE
"""


def _rec(text: str, observed: dict, version, default_random=frozenset()) -> str:
    """observed: line -> value, or (value, True) for a random pick."""
    seen = {k: v if isinstance(v, tuple) else (v, False) for k, v in observed.items()}
    return record.recorded_text(parse_text("s.scn", text), seen, version, frozenset(default_random))


def test_record_writes_differences_as_clauses_and_keeps_comments():
    out = _rec(SCN, {1: "0", 2: "0", 3: "0", 4: "0"}, (6, 1))
    lines = out.splitlines()
    # no default written (never recorded on 6.18): the clause stands alone
    assert lines[1] == "b = socket(AF_INET, SOCK_STREAM)   [6.1: 0]  # a comment"
    assert lines[2].startswith("bind(a, 10.0.0.1:8080) = 0   [5.10: EINVAL]") and lines[2].endswith("# kept")
    assert lines[3] == "bind(b, 10.0.0.1:8080) = EADDRINUSE   [6.1: 0]"
    again = parse_text("s.scn", out)  # what record writes parses
    assert again.steps[3].expected((6, 1)) == ("0", "6.1")
    # a second kernel with the same value joins the clause; one that agrees removes its own
    out2 = _rec(out, {4: "0"}, (5, 10))
    assert out2.splitlines()[3] == "bind(b, 10.0.0.1:8080) = EADDRINUSE   [5.10, 6.1: 0]"
    out3 = _rec(out2, {3: "0"}, (5, 10))
    assert out3.splitlines()[2].startswith("bind(a, 10.0.0.1:8080) = 0 ")
    assert "[" not in out3.splitlines()[2]


def test_record_on_the_default_kernel_rewrites_the_default_and_drops_repeats():
    out = _rec(SCN, {3: "EINVAL"}, (6, 18))
    assert out.splitlines()[2].startswith("bind(a, 10.0.0.1:8080) = EINVAL") and "[" not in out.splitlines()[2]


def test_record_of_random_values():
    """A random pick is never written. Random on the default's kernel too, it stays as written
    (a `*` where it differs); random only on this kernel, it and every later step but socket()
    and setsockopt() are `*` there: what follows a random pick is no spec."""
    both = {3, 4}
    assert _rec(SCN, {3: ("0", True), 4: ("EADDRINUSE", True)}, (5, 10), both) == SCN
    assert _rec(SCN, {4: ("0", True)}, (6, 18)) == SCN
    out = _rec(SCN, {4: ("0", True)}, (5, 10), both)
    assert out.splitlines()[3] == "bind(b, 10.0.0.1:8080) = EADDRINUSE   [5.10: *]"
    step = parse_text("s.scn", out).steps[3]
    assert step.expected((5, 10)) == (None, "5.10") and step.expected((6, 1)) == ("EADDRINUSE", "default")
    out = _rec(SCN, {1: "0", 2: "0", 3: ("0", True), 4: "EADDRINUSE"}, (6, 1))
    lines = out.splitlines()
    assert lines[1].startswith("b = socket(AF_INET, SOCK_STREAM)   [6.1: 0]")  # no default: as seen
    assert lines[2].startswith("bind(a, 10.0.0.1:8080) = 0   [5.10: EINVAL] [6.1: *]")
    assert lines[3] == "bind(b, 10.0.0.1:8080) = EADDRINUSE   [6.1: *]"


def _report(tmp_path: Path, path: Path, steps: list[dict], profile="5.10",
            release="5.10.0-46-cloud-amd64") -> Path:
    report = tmp_path / "corpus.json"
    report.write_text(json.dumps({"kernel_release": release, "profile": profile, "backend": "both",
                                  "scenarios": [{"path": str(path), "skipped": None, "steps": steps}]}))
    return report


def _step(line, kernel, model=None, problems=()):
    return {"line": line, "kernel": {"value": kernel}, "model": {"value": model or kernel},
            "problems": list(problems)}


def test_record_from_a_report_and_refusal_where_the_model_disagrees(tmp_path):
    scn = tmp_path / "s.scn"
    scn.write_text(SCN)
    ok = _report(tmp_path, scn, [_step(1, "0"), _step(2, "0"), _step(3, "EINVAL"),
                                 _step(4, "0", problems=["kernel 0 != expected EADDRINUSE"])])
    run = record.from_json(ok)
    assert run.version == (5, 10) and not run.refused
    said: list[str] = []
    assert record.write(run, None, said.append) == 0
    assert scn.read_text().splitlines()[3] == "bind(b, 10.0.0.1:8080) = EADDRINUSE   [5.10: 0]"
    bad = _report(tmp_path, scn, [_step(4, "0", model="EADDRINUSE",
                                        problems=["model EADDRINUSE != kernel 0"])], profile="6.1",
                  release="6.1.0-57-cloud-amd64")
    before = scn.read_text()
    assert record.write(record.from_json(bad), None, said.append) == 1
    assert scn.read_text() == before
    assert any("NOT recorded for 6.1" in s for s in said) and any("model EADDRINUSE != kernel 0" in s for s in said)


def test_record_refuses_a_file_changed_since_the_report(tmp_path):
    """A report's values go by line: where a line now holds another step, none is written."""
    scn = tmp_path / "s.scn"
    scn.write_text(SCN)
    moved = dict(_step(4, "0"), call="bind(b, 10.0.0.1:9999)")
    said: list[str] = []
    assert record.write(record.from_json(_report(tmp_path, scn, [moved])), None, said.append) == 1
    assert scn.read_text() == SCN
    assert any("the file changed since the run (line 4 was 'bind(b, 10.0.0.1:9999)'" in s for s in said)


def test_record_refuses_a_report_made_under_another_profile(tmp_path):
    scn = tmp_path / "s.scn"
    scn.write_text(SCN)
    with pytest.raises(ScenarioError, match="under the kernel's own profile"):
        record.from_json(_report(tmp_path, scn, [], profile="6.18"))


def test_a_recorded_star_stays_when_a_later_run_sees_no_random_pick():
    once = _rec(SCN, {3: ("EINVAL", True), 4: "EADDRINUSE"}, (6, 1))
    assert "[5.10: EINVAL] [6.1: *]" in once.splitlines()[2]
    again = _rec(once, {3: "0", 4: "0"}, (6, 1))
    assert again == once


@pytest.mark.parametrize("body", ['{"kernel_release": 5, "profile": "5.10"}',
                                  '{"kernel_release": "5.10.0-46", "profile": "5.10", "backend": "both", "scenarios": [{"x": 1}]}',
                                  "not json"])
def test_a_malformed_report_is_one_error(tmp_path, body):
    report = tmp_path / "corpus.json"
    report.write_text(body)
    with pytest.raises(ScenarioError, match="not a `sockharness run --json` report"):
        record.from_json(report)
