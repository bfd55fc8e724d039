"""The mutation target (`make mutate`, harness/mutate.py): a CI-sized sample must end without a
traceback, hang or blow-up, and the tool must see each of those when one happens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import harness.mutate as mutate

ROOT = Path(__file__).resolve().parents[2]


def test_a_sample_of_2000_mutated_files_ends_cleanly(tmp_path):
    r = subprocess.run([sys.executable, "-m", "harness.mutate", "--count", "2000", "--seed", "1",
                        "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "2000 files:" in r.stdout and " 0 failed" in r.stdout
    words = r.stdout.split("files: ")[1].split()
    refused, ran = int(words[0]), int(words[words.index("ran") - 1])
    assert refused + ran == 2000 and ran > 200  # both halves, parser and model, were exercised
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_the_files_depend_on_the_seed_only():
    corpus = mutate.corpus_texts()[:50]
    first = list(mutate.generate(3, 40, corpus))
    assert first == list(mutate.generate(3, 40, corpus))
    assert first != list(mutate.generate(4, 40, corpus))


def test_every_mutation_is_used():
    used = {name for _, _, applied in mutate.generate(1, 2000, mutate.corpus_texts()) for name in applied}
    m = mutate.Mutator(None, [])  # type: ignore[arg-type]
    assert used == {op.__name__ for op in m.ops()}


def test_an_exception_other_than_a_parse_error_is_a_kept_failure(tmp_path, monkeypatch):
    def broken(path, i):
        if i == 3:
            raise KeyError("boom")
        return True
    monkeypatch.setattr(mutate, "check_one", broken)
    tally = mutate.run(1, 5, tmp_path, progress=False)
    assert tally.files == 5 and tally.ran == 4 and len(tally.failures) == 1
    assert "KeyError: 'boom'" in (tmp_path / "fail-1-3.txt").read_text()
    assert (tmp_path / "fail-1-3.scn").exists() and not (tmp_path / "current.scn").exists()


def test_a_multiline_or_unbounded_error_message_is_a_failure(tmp_path, monkeypatch):
    def loud(path):
        raise mutate.ScenarioError(path, 1, 1, "two\\nlines")
    monkeypatch.setattr(mutate, "parse_file", loud)
    monkeypatch.setattr(mutate.ScenarioError, "__str__", lambda self: "two\nlines")
    assert len(mutate.run(1, 2, tmp_path, progress=False).failures) == 2


def _child(body: str, tmp_path: Path) -> subprocess.CompletedProcess:
    code = "\n".join(["import time", "from pathlib import Path", "import harness.mutate as mutate", body,
                      f"t = mutate.run(1, 3, Path({str(tmp_path)!r}), progress=False)",
                      "print('failures', len(t.failures))"])
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_a_hang_prints_tracebacks_exits_and_keeps_its_file(tmp_path):
    r = _child("mutate.HANG_SECONDS = 1\nmutate.check_one = lambda p, i: time.sleep(30)", tmp_path)
    assert r.returncode == 1 and "Timeout" in r.stderr and "<lambda>" in r.stderr
    assert (tmp_path / "current.scn").exists()


def test_a_file_needing_more_than_the_memory_limit_fails_instead_of_taking_the_machine(tmp_path):
    r = _child("mutate.MEMORY_LIMIT = 64 << 20\nmutate._limit_memory()\n"
               "mutate.check_one = lambda p, i: bytearray(256 << 20)", tmp_path)
    assert r.returncode == 0 and "failures 3" in r.stdout, r.stderr
    assert "MemoryError" in (tmp_path / "fail-1-0.txt").read_text()


def test_an_interrupted_run_leaves_no_current_file(tmp_path, monkeypatch):
    def interrupted(path, i):
        raise KeyboardInterrupt
    monkeypatch.setattr(mutate, "check_one", interrupted)
    try:
        mutate.run(1, 3, tmp_path, progress=False)
    except KeyboardInterrupt:
        pass
    else:
        raise AssertionError("the interrupt did not reach the caller")
    assert list(tmp_path.iterdir()) == []
