"""KTAP output (harness/ktap.py) held to the KTAP v1 spec by tests/ktap_spec.py, which must
itself reject broken documents; run --ktap through the command line (model backend)."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ktap_spec import Kind, parse, totals, validate

from harness import ktap
from harness.guests import matrix
from harness.parser import parse_text
from harness.report import to_json
from harness.runner import Backend, Runner
from model.profiles import LINUX_6_18

ROOT = Path(__file__).parents[2]
AGREE = "a = socket(AF_INET, SOCK_STREAM) = 0\nbind(a, 10.0.0.1:8080) = 0\nlisten(a, 5) = 0\n"
DIVERGE = "a = socket(AF_INET, SOCK_STREAM)\nlisten(a, 5) = EINVAL\n"
UNCHECKED = "a = socket(AF_INET, SOCK_STREAM)\nlisten(a, 5)\n"

# ktap.rst's own example (nested three deep, indented 2 as its text says): the validator's
# reading of the spec must accept it
SPEC_EXAMPLE = """KTAP version 1
1..1
  KTAP version 1
  1..3
    KTAP version 1
    1..1
    # test_1: initializing test_1
    ok 1 test_1
  ok 1 example_test_1
    KTAP version 1
    1..2
    ok 1 test_1 # SKIP test_1 skipped
    ok 2 test_2
  ok 2 example_test_2
    KTAP version 1
    1..3
    ok 1 test_1
    # test_2: FAIL
    not ok 2 test_2
    ok 3 test_3 # SKIP test_3 skipped
  not ok 3 example_test_3
not ok 1 main_test
"""


def report(files: dict[str, str], repeat: int = 1, **meta) -> dict:
    """A run's JSON, made by running `files` (path -> text) on the model."""
    runner = Runner(LINUX_6_18, Backend.MODEL)
    scenarios = [parse_text(Path(p), t) for p, t in files.items()]
    results = [runner.run_one(s) for _ in range(repeat) for s in scenarios]
    return to_json(results, {"profile": "6.18", "backend": "model", "complete": True, **meta})


def kinds(text: str, **kw) -> set[Kind]:
    return {p.kind for p in validate(text, **kw)}


def test_the_validator_accepts_the_specs_example_and_rejects_it_indented_otherwise():
    assert validate(SPEC_EXAMPLE, indent=2) == []
    assert Kind.NESTING in kinds(SPEC_EXAMPLE, indent=4)


@pytest.mark.parametrize("text, kind", [
    ("1..1\nok 1 a\n", Kind.VERSION),  # no version line
    ("TAP version 12\n1..1\nok 1 a\n", Kind.VERSION),
    ("KTAP version 1\nok 1 a\n", Kind.PLAN),  # no plan
    ("KTAP version 1\n1..2\nok 1 a\n", Kind.PLAN_UNMET),
    ("KTAP version 1\n1..1\nok 1 a\nok 2 b\n", Kind.PLAN_UNMET),
    ("KTAP version 1\n1..2\nok 1 a\nok 3 b\n", Kind.NUMBER),
    ("KTAP version 1\n1..1\nok 2 a\n", Kind.NUMBER),  # not from 1
    ("KTAP version 1\n1..1\nok one\n", Kind.RESULT),
    ("KTAP version 1\n1..1\nok 1 a#b\n", Kind.RESULT),  # '#' in the description
    ("KTAP version 1\n1..1\nok 1 a # ERROR boom\n", Kind.DIRECTIVE),
    ("KTAP version 1\n1..1\nok 1 a # FROB x\n", Kind.DIRECTIVE),
    ("KTAP version 1\n1..1\n  ok 1 a\n", Kind.NESTING),  # indented with no subtest
    ("KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    ok 1 a\n", Kind.NESTING),  # no parent result
    ("KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    not ok 1 a\nok 1 p\n", Kind.BUBBLE),
    ("KTAP version 1\n1..1\n    KTAP version 1\n    ok 1 a\nok 1 p\n", Kind.PLAN),  # subtest without plan
    ("KTAP version 1\n1..1\n    KTAP version 1\n    1..2\n    ok 1 a\nok 1 p\n", Kind.PLAN_UNMET),
    ("KTAP version 1\n1..1\nhello\nok 1 a\n", Kind.UNKNOWN),
    ("KTAP version 1\n1..1\n1..1\nok 1 a\n", Kind.PLAN),
])
def test_the_validator_rejects_broken_documents(text, kind):
    assert kind in kinds(text)


def test_the_validator_allows_what_the_spec_allows():
    assert validate("KTAP version 1\n1..2\n# hi\nok 1\nok 2 - b # rcode=0\n") == []
    assert validate("KTAP version 1\n1..1\nhello\nok 1 a\n", strict=False) == []
    skipped = "KTAP version 1\n1..1\n    KTAP version 1\n    1..1\n    ok 1 a # SKIP x\nok 1 p # SKIP\n"
    assert validate(skipped) == []


def counts(doc: str) -> dict[str, int]:
    """Leaves of the document by kselftest's Totals categories."""
    leaves = parse(doc).leaves()
    return {"pass": sum(t.ok and not t.directive for t in leaves),
            "fail": sum(not t.ok and t.directive != "ERROR" for t in leaves),
            "xfail": 0, "xpass": 0,
            "skip": sum(t.directive == "SKIP" for t in leaves),
            "error": sum(t.directive == "ERROR" for t in leaves)}


def test_agree_diverge_and_unchecked_runs_read_as_pass_fail_and_skip():
    doc = ktap.document(report({"f/a.scn": AGREE, "f/d.scn": DIVERGE, "g/u.scn": UNCHECKED}))
    assert validate(doc) == []
    tree = parse(doc)
    assert [t.description for t in tree.tests] == ["f", "g"]
    f, g = tree.tests
    assert not f.ok and [t.ok for t in f.subtests] == [True, False]
    assert g.ok and g.directive == "SKIP" and g.subtests[0].directive == "SKIP"
    assert "nothing checked" in g.subtests[0].diagnostic
    lines = doc.splitlines()
    fail = lines.index("    not ok 2 f/d.scn")
    diag = lines[fail - 4:fail]  # the divergent step, both sides, the problem, before its result
    assert diag[0] == "    # line 2: listen(a, 5) = EINVAL"
    assert diag[1].startswith("    #   model : 0 -- ") and diag[2] == "    #   kernel: (not run)"
    assert diag[3].startswith("    #   problem: ")
    assert totals(doc) == counts(doc) == {"pass": 1, "fail": 1, "xfail": 0, "xpass": 0, "skip": 1, "error": 0}


def test_skips_and_errors_say_why():
    data = report({"f/a.scn": AGREE, "f/b.scn": AGREE, "f/c.scn": AGREE})
    data["scenarios"][1].update(skipped="@cpu 3 needs 4 CPUs")
    data["scenarios"][2].update(error="worker died\nTraceback line", agreed=False)
    doc = ktap.document(data)
    assert validate(doc) == []
    assert "    ok 2 f/b.scn # SKIP @cpu 3 needs 4 CPUs" in doc.splitlines()
    assert "    not ok 3 f/c.scn # ERROR worker died" in doc.splitlines()
    assert "    # Traceback line" in doc.splitlines()
    assert totals(doc) == counts(doc) == {"pass": 1, "fail": 0, "xfail": 0, "xpass": 0, "skip": 1, "error": 1}


def test_repeat_runs_are_named_apart():
    doc = ktap.document(report({"f/a.scn": AGREE, "g/b.scn": AGREE}, repeat=2))
    assert validate(doc) == []
    f, g = parse(doc).tests
    assert [t.description for t in f.subtests] == ["f/a.scn [run 1 of 2]", "f/a.scn [run 2 of 2]"]
    assert len(g.subtests) == 2 and totals(doc)["pass"] == 4


def test_control_characters_and_hashes_stay_on_their_line():
    data = report({"f/a.scn": DIVERGE})
    sc = data["scenarios"][0]
    sc["path"] = "f/bell\x07 #1\nnot ok 9 forged.scn"
    sc["steps"][1]["call"] = "listen(a, 5)\nok 7 forged"
    doc = ktap.document(data)
    assert validate(doc) == [] and "\x07" not in doc
    (leaf,) = parse(doc).leaves()  # the forged result lines stayed inside their own lines
    assert leaf.description == "f/bell\\x07 \\x231\\nnot ok 9 forged.scn" and not leaf.ok
    assert not any(ln.lstrip().startswith(("ok 7", "not ok 9")) for ln in doc.splitlines())


def test_an_incomplete_report_gets_a_failed_run_complete_test():
    doc = ktap.document(report({"f/a.scn": AGREE}, complete=False, incomplete="interrupted (Ctrl-C) after 1 of 9"))
    assert validate(doc) == []
    last = parse(doc).tests[-1]
    assert (last.description, last.ok, last.directive) == ("run complete", False, "ERROR")


def test_an_interrupted_stream_is_well_formed_with_its_plan_visibly_unmet():
    data = report({"f/a.scn": AGREE, "f/b.scn": AGREE, "g/c.scn": AGREE})
    out = io.StringIO()
    w = ktap.KtapWriter(out)
    w.plan(ktap.groups_of(data["scenarios"]))
    w.add(data["scenarios"][0])
    w.close(stopped="interrupted (Ctrl-C)")
    doc = out.getvalue()
    problems = validate(doc)
    assert problems and {p.kind for p in problems} == {Kind.PLAN_UNMET}  # and nothing else wrong
    assert "# Planned tests != run tests (3 != 1)" in doc
    assert parse(doc).tests[0].directive == "ERROR"
    assert totals(doc)["error"] == 1 and totals(doc)["pass"] == 1


def test_a_document_closed_before_its_plan_is_one_failed_test():
    doc = ktap.error_document("x.scn: no such file or folder")
    assert validate(doc) == []
    (t,) = parse(doc).tests
    assert not t.ok and t.directive == "ERROR" and totals(doc)["error"] == 1


def test_results_out_of_feature_order_are_refused():
    data = report({"f/a.scn": AGREE, "g/b.scn": AGREE, "f/c.scn": AGREE})
    w = ktap.KtapWriter(io.StringIO())
    w.plan(ktap.groups_of(data["scenarios"]))
    w.add(data["scenarios"][0])
    with pytest.raises(ValueError, match="feature"):
        w.add(data["scenarios"][1])
    assert validate(ktap.document(data)) == []  # document() groups them itself


def test_matrix_nests_each_kernels_corpus_and_fails_a_kernel_that_did_not_run(tmp_path):
    good = report({"f/a.scn": AGREE, "g/b.scn": AGREE})
    bad = copy.deepcopy(good)
    bad["scenarios"][1] = report({"g/b.scn": DIVERGE})["scenarios"][0]
    paths = []
    for name, data in (("good", good), ("bad", bad)):
        p = tmp_path / f"{name}.json"
        p.write_text(json.dumps(data))
        paths.append(p)
    columns = [matrix.Column("6.12", "6.12.9-amd64", "6.12", report=paths[0]),
               matrix.Column("5.10", "5.10.0-46-amd64", "5.10", report=paths[1]),
               matrix.Column("7.2", "7.2.1-amd64", "7.2", problem="timed out after 1500 s")]
    doc = ktap.matrix_document(columns)
    assert validate(doc) == []
    tree = parse(doc)
    assert [t.description for t in tree.tests] == [
        "6.12 (release 6.12.9-amd64, profile 6.12)", "5.10 (release 5.10.0-46-amd64, profile 5.10)",
        "7.2 (release 7.2.1-amd64, profile 7.2)"]
    assert [t.ok for t in tree.tests] == [True, False, False]
    assert tree.tests[2].directive == "ERROR" and "timed out" in tree.tests[2].diagnostic
    assert [s.description for s in tree.tests[0].subtests] == ["f", "g"]  # features, then scenarios
    assert totals(doc) == counts(doc) == {"pass": 3, "fail": 1, "xfail": 0, "xpass": 0, "skip": 0, "error": 1}


def sockharness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_run_ktap_streams_alone_on_stdout_with_json_and_junit_beside_it(tmp_path):
    for name, text in (("f/a.scn", AGREE), ("g/d.scn", DIVERGE), ("f/b.scn", AGREE)):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    r = sockharness("run", "--ktap", "--backend", "model", "--no-minimize", "--repeat", "2",
                    str(tmp_path / "g"), str(tmp_path / "f"),
                    "--json", str(tmp_path / "r.json"), "--junit", str(tmp_path / "r.xml"))
    assert r.returncode == 1  # unchanged: a divergence
    assert validate(r.stdout) == [], r.stdout
    assert [t.description for t in parse(r.stdout).tests] == ["g", "f"]  # first-appearance order
    assert "summary" not in r.stdout and "TOTAL" in r.stderr and "DIVERGED" in r.stderr
    assert totals(r.stdout) == counts(r.stdout) == {"pass": 4, "fail": 2, "xfail": 0, "xpass": 0,
                                                    "skip": 0, "error": 0}
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["scenarios"] == 6
    assert (tmp_path / "r.xml").exists()


def test_run_ktap_on_a_missing_path_is_a_failed_document_and_exit_2(tmp_path):
    r = sockharness("run", "--ktap", "--backend", "model", str(tmp_path / "nope.scn"))
    assert r.returncode == 2 and "no such file or folder" in r.stderr
    assert validate(r.stdout) == [] and totals(r.stdout)["error"] == 1


def test_kernels_report_writes_ktap_and_kcidb_beside_the_table(tmp_path, capsys):
    from harness.guests import command, qemu

    p = tmp_path / "corpus.json"
    p.write_text(json.dumps(report({"f/a.scn": AGREE})))
    columns = [matrix.Column("6.12", "6.12.9-amd64", "6.12", report=p),
               matrix.Column("7.2", "7.2.1-amd64", "7.2", problem="did not boot")]
    out = io.StringIO()
    kcidb_file = tmp_path / "kcidb.json"
    code = command._report(columns, [], tmp_path, qemu.Accel.TCG, 61.0, None,
                           command.Outputs(ktap=out, kcidb=kcidb_file))
    assert code == command.EXIT_DIVERGE  # the exit status is the matrix's, unchanged
    assert validate(out.getvalue()) == [] and [t.ok for t in parse(out.getvalue()).tests] == [True, False]
    assert "KTAP" not in capsys.readouterr().out  # the human table is printed apart
    # and the KCIDB file beside it: a test per scenario, the unbooted kernel as MISS
    tests = json.loads(kcidb_file.read_text())["tests"]
    assert [(t["build_id"].rsplit("/", 1)[1], t["status"]) for t in tests] == [("6.12", "PASS"), ("7.2", "MISS")]
