"""UDP receivers predicted exactly: at least 100,000 datagrams across SO_REUSEPORT groups of
2-256 UDP sockets, with closes and new members between batches, each compared with the model
under the namespace's calibrated udp_ehashfn secret."""

from __future__ import annotations

import time

import pytest

from harness.compare import Check
from harness.lookup_scenarios import scenarios
from harness.runner import Backend, Runner
from harness.running import running_profile

pytestmark = pytest.mark.kernel
TOTAL = 100_000


@pytest.mark.native_speed("100,000 datagrams take minutes under TCG; the corpus's UDP groups check the same picks")
def test_100k_datagrams_received_as_predicted(pool, capsys):
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool)
    t0 = time.monotonic()
    results = runner.run(scenarios(TOTAL, seed=2, udp=True))
    elapsed = time.monotonic() - t0
    assert not runner.hash_problem, runner.hash_problem
    sent = [s for r in results for s in r.steps if s.step.verb == "dgram"]
    exact = [s for s in sent if Check.EXACT in s.checks and not s.model.one_of]
    wrong = [f"{r.scenario.path}:{s.step.line}: {s.problems}" for r in results for s in r.divergent]
    with capsys.disabled():
        print(f"\n{len(sent)} datagrams injected, {len(exact)} received as predicted exactly, "
              f"{len(wrong)} divergent; {len(results)} scenarios in {elapsed:.1f} s "
              f"({len(sent) / elapsed:.0f} verified lookups/s)")
    assert len(sent) >= TOTAL
    assert len(exact) == len(sent), "some picks were only checked by property"
    assert not wrong, "\n".join(wrong[:20])


def test_the_udp_secret_is_calibrated_apart_from_tcps(pool):
    """udp_ehashfn has a secret of its own (udp_ehash_secret + net_hash_mix): one fits the
    UDP probe's picks, and it is not TCP's (net/ipv4/udp.c:udp_ehashfn)."""
    udp = pool.udp_secret()
    tcp = pool.hash_secret(running_profile()[0].ehash_lport_outside)
    assert len(udp.fits) == 1 and udp.fn == "udp_ehashfn", udp.problem
    assert udp.secret != tcp.secret
    assert pool.udp_calibrated() and pool.udp_secret() is udp  # cached for the namespace


def test_ipv6_udp_picks_are_exact_by_the_kernels_own_hashes(pool):
    """udp6_ehashfn mixes a second secret into the source address, so no calibrated word
    predicts it; the kernel's value of each tuple, read after the scenario by an eBPF
    recorder on the same address and port (harness/hashprobe.py), makes every pick exact."""
    from pathlib import Path

    from harness.parser import parse_file

    files = sorted(Path("tests/scenarios/udp_lookup").glob("group*-v6-*.scn"))
    runner = Runner(running_profile()[0], Backend.BOTH, 0, pool)
    results = runner.run([parse_file(f) for f in files])
    sent = [s for r in results for s in r.steps if s.step.verb == "dgram"]
    assert len(files) == 10 and len(sent) >= 10 * 16
    assert all(r.agreed for r in results), [r.scenario.path for r in results if not r.agreed]
    if pool.hashes6_problem:
        pytest.skip(f"the kernel's hashes could not be read here: {pool.hashes6_problem}")
    assert all(Check.EXACT in s.checks and not s.model.one_of for s in sent)
