"""The KCIDB document of a matrix: valid under kcidb-io's v5 schema (which rejects a broken
one), a test per scenario run with the status its verdict gives, paths in the schema's
alphabet, divergences in the log excerpt, kernels that did not run as MISS."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import jsonschema
import kcidb_io
import pytest
from html_sample import matrix_columns, run_report

from harness import kcidb
from harness.guests import matrix
from harness.report import visible

STARTED = datetime(2026, 12, 2, 20, 0, tzinfo=timezone.utc)
SCHEMA = kcidb_io.schema.LATEST


def _columns(tmp_path) -> list[matrix.Column]:
    """matrix_columns' three kernels (a divergence on 5.10, 7.2 never booted), plus a host
    whose corpus has an unchecked scenario, a worker error and a run cut short."""
    cols = matrix_columns(tmp_path)
    report = run_report()
    unchecked = copy.deepcopy(report["scenarios"][-1])
    unchecked.update(path="tests/scenarios/bind/nothing.scn", checked=False,
                     steps=[dict(s, checked=False, checks=[]) for s in unchecked["steps"]])
    error = copy.deepcopy(report["scenarios"][-1])
    error.update(path="tests/scenarios/queues/crash.scn", feature="queues", agreed=False, checked=False,
                 error="HARNESS_ERROR: the namespace worker died\n(traceback)")
    report["scenarios"] += [unchecked, error]
    report.update(complete=False, incomplete="SIGTERM after 9 of 677 scenario runs")
    host = tmp_path / "host.json"
    host.write_text(json.dumps(report))
    cols.append(matrix.Column("6.18 (host)", "6.18.44", "6.18", 30.0, report=host,
                              problem="corpus run incomplete: SIGTERM after 9 of 677 scenario runs"))
    return cols


def test_schema_is_v5_and_the_document_is_valid(tmp_path):
    assert (SCHEMA.major, SCHEMA.minor) == (5, 3)
    doc = kcidb.document(_columns(tmp_path), run="20261202T200000Z", started=STARTED)
    assert doc["version"] == {"major": SCHEMA.major, "minor": SCHEMA.minor}
    SCHEMA.validate_exactly(doc)  # validate() would take the version the document claims


def test_builds_pass_only_for_kernels_that_ran_the_corpus(tmp_path):
    cols = _columns(tmp_path)
    doc = kcidb.document(cols, run="r", started=STARTED)
    assert [b.get("status") for b in doc["builds"]] == [
        "PASS" if c.corpus() is not None else None for c in cols]
    assert None in [b.get("status") for b in doc["builds"]]  # 7.2 never booted: unknown


def test_naive_start_time_or_bad_origin_refused(tmp_path):
    with pytest.raises(ValueError, match="timezone-aware"):
        kcidb.document(_columns(tmp_path), run="r", started=datetime(2026, 12, 2, 20, 0))
    with pytest.raises(ValueError, match="origin"):
        kcidb.document(_columns(tmp_path), run="r", started=STARTED, origin="My CI")


@pytest.mark.parametrize("breakage", ["status", "path", "empty part", "origin", "excerpt", "orphan",
                                      "time", "nul", "version"])
def test_a_broken_document_is_rejected(tmp_path, breakage):
    """The check can fail: each of these is refused by the schema ("time" only with
    jsonschema's format checkers installed: kcidb-io's jsonschema[format])."""
    doc = kcidb.document(_columns(tmp_path), run="r", started=STARTED)
    test = doc["tests"][0]
    if breakage == "status":
        test["status"] = "AGREE"
    elif breakage == "path":
        test["path"] = "sockharness.bind.conflict.scn!"
    elif breakage == "empty part":
        test["path"] = "sockharness..conflict"
    elif breakage == "origin":
        test["origin"] = "Sock Harness"
    elif breakage == "excerpt":
        test["log_excerpt"] = "x" * (kcidb.LOG_EXCERPT_MAX + 1)
    elif breakage == "time":
        test["start_time"] = "2026-12-02 20:00:00"  # no T, no offset
    elif breakage == "nul":
        test["comment"] = "a\0b"
    elif breakage == "version":
        doc["version"] = {"major": 4, "minor": 0}
    else:
        del test["build_id"]
    with pytest.raises(jsonschema.exceptions.ValidationError):
        SCHEMA.validate_exactly(doc)


def test_a_test_per_scenario_run_with_its_verdict(tmp_path):
    cols = _columns(tmp_path)
    doc = kcidb.document(cols, run="r", started=STARTED)
    assert [c["id"] for c in doc["checkouts"]] == [f"sockharness:r/{c.version}" for c in cols]
    assert {b["checkout_id"] for b in doc["builds"]} == {c["id"] for c in doc["checkouts"]}
    by_kernel: dict[str, list[dict]] = {}
    for t in doc["tests"]:
        by_kernel.setdefault(t["build_id"].split("/", 1)[1], []).append(t)
    for c in cols:
        corpus = c.corpus()
        tests = by_kernel.get(c.version, [])
        scenario_tests = [t for t in tests if t["path"] != "sockharness"]
        assert len(scenario_tests) == (len(corpus["scenarios"]) if corpus else 0)
        for sc, t in zip(corpus["scenarios"] if corpus else (), scenario_tests, strict=True):
            want = ("SKIP" if sc["skipped"] else "ERROR" if sc["error"] else "FAIL" if not sc["agreed"]
                    else "PASS" if sc["checked"] else "DONE")
            assert t["status"] == want, (sc["path"], t["status"])
            assert t["misc"]["scenario"] == sc["path"] and t["comment"] == visible(sc["path"])
            assert t["duration"] == sc["seconds"]
            assert c.release in t["environment"]["comment"] and c.profile in t["environment"]["comment"]
        miss = [t for t in tests if t["path"] == "sockharness"]
        assert [t["status"] for t in miss] == (["MISS"] if c.problem or corpus is None else [])
        if miss:
            assert (c.problem or "no corpus results") in miss[0]["log_excerpt"]
    statuses = {t["status"] for t in doc["tests"]}
    assert statuses == {"PASS", "FAIL", "SKIP", "DONE", "ERROR", "MISS"}
    assert len({t["id"] for t in doc["tests"]}) == len(doc["tests"])  # unique ids


def test_divergence_in_the_excerpt_and_paths_sanitized(tmp_path):
    doc = kcidb.document(_columns(tmp_path), run="r", started=STARTED)
    fail = next(t for t in doc["tests"] if t["status"] == "FAIL" and "conflict" in t["comment"])
    assert fail["path"] == "sockharness.bind.conflict_"  # "conflict\x1b.scn": the escape replaced
    assert fail["comment"] == "tests/scenarios/bind/conflict\\x1b.scn"  # shown, not sent to a terminal
    assert "model" in fail["log_excerpt"] and "kernel" in fail["log_excerpt"]
    assert "inet_csk_bind_conflict" in fail["log_excerpt"]  # the model's reason
    assert "reproducer" in fail["log_excerpt"]
    skip = next(t for t in doc["tests"] if t["status"] == "SKIP")
    assert skip["log_excerpt"] == "@kernel < 5.0 excludes profile 6.18"
    assert kcidb.test_path("bind6_matrix", "tests/scenarios/bind6_matrix/v6only.1-any.scn") == \
        "sockharness.bind6_matrix.v6only_1-any"
    for feature, name in [("", ".scn"), ("a.b", "x/y..z.scn"), ("é", "naïve répertoire.scn"),
                          ("bind", "tests/scenarios/bind/\x1b[31m.scn")]:
        path = kcidb.test_path(feature, name)
        assert SCHEMA.path_re.fullmatch(path) and path.count(".") == 2, path


def test_the_same_inputs_give_the_same_document(tmp_path):
    cols = _columns(tmp_path)
    a = kcidb.document(cols, run="r", started=STARTED)
    b = kcidb.document(cols, run="r", started=STARTED)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = kcidb.document(cols, run="r2", started=STARTED)
    assert not {t["id"] for t in a["tests"]} & {t["id"] for t in c["tests"]}  # a new run, new ids


def test_a_long_divergence_is_cut_to_the_schema_limit(tmp_path):
    report = run_report()
    report["scenarios"][0]["divergence"] = "y" * (3 * kcidb.LOG_EXCERPT_MAX)
    path = tmp_path / "long.json"
    path.write_text(json.dumps(report))
    doc = kcidb.document([matrix.Column("6.12", "6.12.9", "6.12", 1.0, report=path)], run="r", started=STARTED)
    SCHEMA.validate_exactly(doc)
    assert len(doc["tests"][0]["log_excerpt"]) == kcidb.LOG_EXCERPT_MAX
    assert doc["tests"][0]["log_excerpt"].endswith("the corpus JSON has it all)")
