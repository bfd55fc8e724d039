"""A replaced namespace is calibrated again only when a scenario that needs its hash comes, not
at once: 5.10 (no SOCK_DESTROY of TIME_WAIT sockets) replaces its namespace after every
TIME_WAIT scenario, and none of those needs a hash; calibrating each new namespace eagerly
was most of that kernel's time in a guest. A scenario that does need it still gets it, and
its picks stay exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import worker
from harness.compare import Check
from harness.parser import parse_file, parse_text
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
GROUPS = Path(__file__).parents[1] / "scenarios" / "groups"
RUNNING, _ = running_profile()
DIRTY = "dirty"  # a socket of this name marks a scenario the worker reports not clean


def _plain(name: str) -> object:
    """No reuseport group: no hash decides anything (Scenario.hashes_matter is false)."""
    return parse_text(f"{name}.scn", f"{name} = socket(AF_INET, SOCK_STREAM) = 0\n"
                      f"bind({name}, 10.0.0.1:7000) = 0\nlisten({name}, 4) = 0\n")


def test_replaced_namespaces_calibrate_only_for_a_scenario_that_needs_it(monkeypatch):
    run_job, probe = worker._run_job, worker.Worker.probe
    probes: list[int] = []

    def dirty_job(executor, job):  # runs in the forked worker: as a leftover TIME_WAIT would
        outcomes, dirt = run_job(executor, job)
        if any(getattr(s, "name", "") == DIRTY for s in job.steps):
            dirt += "forced by the test; "
        return outcomes, dirt

    def counted(self):
        probes.append(1)
        return probe(self)

    monkeypatch.setattr(worker, "_run_job", dirty_job)
    monkeypatch.setattr(worker.Worker, "probe", counted)
    hashed, again = parse_file(GROUPS / "008-plain.scn"), parse_file(GROUPS / "008-plain.scn")
    # a scenario whose picks are the hash's and which leaves its namespace unclean: it ran in
    # the old namespace, so it is checked with the old namespace's secret
    source = (GROUPS / "008-plain.scn").read_text()
    hashed_dirty = parse_text("hashed-dirty.scn", source + f"{DIRTY} = socket(AF_INET, SOCK_STREAM) = 0\n")
    assert hashed.hashes_matter and hashed_dirty.hashes_matter and not _plain(DIRTY).hashes_matter
    work = [hashed, _plain(DIRTY), _plain(DIRTY), _plain(DIRTY), _plain("quiet"), again, hashed_dirty,
            _plain("after")]
    with worker.Pool() as pool:
        results = Runner(RUNNING, Backend.BOTH, 0, pool).run(work)
        replaced = pool.replaced
    assert all(r.agreed for r in results), [(r.scenario.path, r.divergent) for r in results]
    assert replaced == 4
    # the first namespace's, and the fourth's when the second hashed scenario came; none for
    # the fifth, as only a plain scenario follows (one per replacement: that would be 5)
    assert len(probes) == 2
    for r in results[5:7]:
        syns = [s for s in r.steps if s.step.verb == "syn"]
        assert syns and all(s.checks == [Check.EXACT] for s in syns), r.scenario.path
