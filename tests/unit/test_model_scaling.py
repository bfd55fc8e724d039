"""The model's port searches on big inputs: linear work, and the same answers as the kernel's
loop taken offset by offset (model/ephemeral.py, model/connect.py). No timing here: the times
are `make bench`'s (harness/bench.py, "ephemeral" section); these tests count checks instead."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.model_backend import ModelExecutor
from harness.parser import parse_text
from harness.runner import collect
from model import connect as connect_mod
from model.connect import hash_connect_candidates
from model.ephemeral import Blocked, FreePorts, PortFinder, Verdicts
from model.outcome import PortChoice, _runs
from model.profiles import LINUX_6_18, PROFILES, RELEASE_PROFILES, UNBOOTED

CORPUS = Path(__file__).parents[1] / "scenarios"
BOOTED = [p.name for p in RELEASE_PROFILES if p.name not in UNBOOTED]


def _binds(n: int, addr: str = "0.0.0.0") -> str:
    return "\n".join(f"s{i} = socket(AF_INET, SOCK_STREAM) = 0\nbind(s{i}, {addr}:0) = 0"
                     for i in range(n))


def _connects(n: int) -> str:
    head = ["@sysctl net.core.somaxconn = 1000000", "l = socket(AF_INET, SOCK_STREAM) = 0",
            "bind(l, 10.0.0.2:8080) = 0", f"listen(l, {n}) = 0"]
    return "\n".join(head + [f"c{i} = socket(AF_INET, SOCK_STREAM) = 0\nconnect(c{i}, "
                             "10.0.0.2:8080) = 0" for i in range(n)])


def _count_checks(monkeypatch, text: str) -> tuple[int, list]:
    """Run a scenario on the model, counting the per-port conflict checks of the searches."""
    calls = {"free": 0, "usable": 0}
    free, usable = PortFinder.free, connect_mod.port_usable

    def counted_free(self, sk, port, relax):
        calls["free"] += 1
        return free(self, sk, port, relax)

    def counted_usable(*args):
        calls["usable"] += 1
        return usable(*args)

    monkeypatch.setattr(PortFinder, "free", counted_free)
    monkeypatch.setattr(connect_mod, "port_usable", counted_usable)
    out = ModelExecutor(LINUX_6_18).run(parse_text("scaling.scn", text))
    return calls["free"] + calls["usable"], out


@pytest.mark.parametrize("make", [_binds, _connects], ids=["bind", "connect"])
def test_searches_check_each_port_a_bounded_number_of_times(monkeypatch, make):
    """N searches over a range of 28,232 ports check O(N) ports in all (each port when its bucket
    changes), where the old model checked every bound port at every search (O(N^2)). 3,000
    searches: the quadratic count would be ~4.5 million."""
    n = 3000
    checks, out = _count_checks(monkeypatch, make(n))
    assert all(o.value == "0" for o in out)
    assert checks <= 3 * n, checks
    # each result is the whole free parity class, held without listing it
    searched = [o for o in out if o.candidates is not None]
    assert len(searched) == n
    last = searched[-1].candidates
    assert not isinstance(last.ports, tuple) and len(last.ports) == 28232 // 2 - (n - 1)


def test_past_one_parity_the_search_goes_on_in_the_other():
    """More binds than ports of the first parity: the rest come from the even offsets, and the
    last search of a full range fails (EADDRINUSE), each in a bounded number of checks."""
    text = "@sysctl net.ipv4.ip_local_port_range = 40000 40199\n" + _binds(201)
    out = ModelExecutor(LINUX_6_18).run(parse_text("full.scn", text))
    values = [o.value for o in out[1::2]]
    assert values == ["0"] * 200 + ["EADDRINUSE"]
    assert "even offsets" in out[2 * 150 + 1].candidates.rule


def _random_scenario(rng: random.Random) -> str:
    """A small port range (odd or even size, a few reserved) and a random mix of binds (port 0
    or one of the range), listens, connects, closes and flags, to reach exhaustion often."""
    low = 40000
    size = rng.randint(1, 9)
    lines = [f"@sysctl net.ipv4.ip_local_port_range = {low} {low + size - 1}"]
    if rng.random() < 0.3:
        reserved = sorted(rng.sample(range(low, low + size), rng.randint(1, max(1, size // 3))))
        lines.append(f"@sysctl net.ipv4.ip_local_reserved_ports = {','.join(map(str, reserved))}")
    if rng.random() < 0.5:  # relaxed scans: the only ones that read the owners' flags
        lines.append("@sysctl net.ipv4.ip_autobind_reuse = 1")
    lines += ["srv = socket(AF_INET, SOCK_STREAM) = 0", "bind(srv, 10.0.0.2:8080) = 0",
              "listen(srv, 4096) = 0"]
    names: list[str] = []
    for i in range(rng.randint(5, 30)):
        r = rng.random()
        if r < 0.35 or not names:
            name = f"s{i}"
            fam = rng.choice(["AF_INET", "AF_INET", "AF_INET6"])
            lines.append(f"{name} = socket({fam}, SOCK_STREAM) = 0")
            for opt in ("SO_REUSEADDR", "SO_REUSEPORT"):
                if rng.random() < 0.5:
                    lines.append(f"setsockopt({name}, {opt}, 1)")
            names.append(name)
            continue
        name = rng.choice(names)
        fam6 = any(line.startswith(f"{name} = socket(AF_INET6") for line in lines)
        if r < 0.45:
            # flags change on a bound (or listening) socket too: its port's verdicts change
            opt = rng.choice(["SO_REUSEADDR", "SO_REUSEPORT"] + ["IPV6_V6ONLY"] * fam6)
            lines.append(f"setsockopt({name}, {opt}, {rng.randint(0, 1)})")
        elif r < 0.6:
            port = 0 if rng.random() < 0.7 else rng.randint(low, low + size - 1)
            addr = rng.choice(["[::]", "[::ffff:10.0.0.1]", "[fd00::1]"] if fam6
                              else ["0.0.0.0", "10.0.0.1"])
            lines.append(f"bind({name}, {addr}:{port})")
        elif r < 0.75:
            lines.append(f"listen({name}, 5)")
        elif r < 0.9:
            # the parser takes no listen() after a connect() of unstated outcome: the socket
            # leaves the mix (it stays open, its port held)
            lines.append(f"connect({name}, {'[::ffff:10.0.0.2]' if fam6 else '10.0.0.2'}:8080)")
            names.remove(name)
        else:
            lines.append(f"close({name})")
            names.remove(name)
    return "\n".join(lines)


def test_phases_and_connects_equal_the_offset_by_offset_loop(monkeypatch):
    """On random small ranges, every bind/listen search phase finds what the kernel's loop
    taken offset by offset finds (same ports, same 'some offset fails'), and every connect()
    search equals hash_connect_candidates testing each port; every cached verdict is also
    rechecked against a fresh one (Verdicts.check_all)."""
    monkeypatch.setattr(Verdicts, "check_all", True)
    phase = PortFinder._phase
    compared = {"phase": 0, "connect": 0}

    def checked_phase(self, sk, ph):
        found, fails, rule = phase(self, sk, ph)
        from model.ephemeral import phase_range
        low, high, remaining = phase_range(sk, ph, self.sysctls)
        if remaining > 0:
            ref, ref_fails, _ = self._phase_by_offsets(sk, ph, low, high, remaining)
            assert (set(found), fails) == (ref, ref_fails), (low, high, ph)
            compared["phase"] += 1
        return found, fails, rule

    search = connect_mod.ConnectSearch.candidates

    def checked_connect(self, sk, saddr, daddr, dport, ehash, sysctls, range_step1=True):
        got = search(self, sk, saddr, daddr, dport, ehash, sysctls, range_step1)

        def usable(port):
            key = connect_mod.conn_key(saddr, port, daddr, dport)
            return connect_mod.port_usable(self.tables, sk, port, key, ehash, sysctls)

        ref = hash_connect_candidates(sk, usable, sysctls, range_step1)
        assert _same(got, ref), (got, ref)
        compared["connect"] += 1
        return got

    monkeypatch.setattr(PortFinder, "_phase", checked_phase)
    monkeypatch.setattr(connect_mod.ConnectSearch, "candidates", checked_connect)
    rng = random.Random(12)
    for i in range(400):
        text = _random_scenario(rng)
        for profile in (LINUX_6_18, PROFILES["5.10"]):
            ModelExecutor(profile, seed=i).run(parse_text(f"random-{i}.scn", text))
    assert compared["phase"] > 2000 and compared["connect"] > 500, compared


def _same(a: PortChoice | None, b: PortChoice | None) -> bool:
    if a is None or b is None:
        return a is b
    return (tuple(a.ports), a.rule, a.may_fail, a.describe()) == (
        tuple(b.ports), b.rule, b.may_fail, b.describe())


def test_a_flag_changed_on_a_bound_socket_reaches_the_next_search():
    """ip_autobind_reuse's relaxed scan: b holds the odd port without SO_REUSEADDR, so c shares
    a's even port. Once b sets SO_REUSEADDR, d (of c's kind: its search starts from the
    verdicts c's search cached, b's port among them) shares b's port, the odd offsets coming
    first: Kernel.setsockopt marks the owner's port for a recheck."""
    head = """@sysctl net.ipv4.ip_local_port_range = 40000 40001
@sysctl net.ipv4.ip_autobind_reuse = 1
a = socket(AF_INET, SOCK_STREAM) = 0
setsockopt(a, SO_REUSEADDR, 1) = 0
bind(a, 0.0.0.0:40000) = 0
b = socket(AF_INET, SOCK_STREAM) = 0
bind(b, 0.0.0.0:40001) = 0
c = socket(AF_INET, SOCK_STREAM) = 0
setsockopt(c, SO_REUSEADDR, 1) = 0
bind(c, 0.0.0.0:0) = 0
"""
    tail = """d = socket(AF_INET, SOCK_STREAM) = 0
setsockopt(d, SO_REUSEADDR, 1) = 0
bind(d, 0.0.0.0:0) = 0"""
    same = ModelExecutor(LINUX_6_18).run(parse_text("same.scn", head + tail))
    changed = ModelExecutor(LINUX_6_18).run(
        parse_text("changed.scn", head + "setsockopt(b, SO_REUSEADDR, 1) = 0\n" + tail))
    assert tuple(same[7].candidates.ports) == (40000,)  # c
    assert tuple(same[-1].candidates.ports) == (40000,)
    assert tuple(changed[-1].candidates.ports) == (40001,)


@pytest.mark.parametrize("profile", BOOTED)
def test_corpus_verdicts_are_never_stale(monkeypatch, profile):
    """Every search of the corpus rechecks every port it has cached against a fresh check: a
    change to a bucket, an owner's flags or state, or a 4-tuple that did not mark its port
    (BindTables.touch) fails here."""
    monkeypatch.setattr(Verdicts, "check_all", True)
    for f in collect([CORPUS]):
        ModelExecutor(PROFILES[profile]).run(parse_text(f, f.read_text()))


def test_free_ports_describe_rank_and_remember_as_a_list_would():
    """FreePorts against the listed set: count, rank (what random.choice indexes), `in`, and
    outcome._runs's text; and an earlier FreePorts still answers for the ports of its time."""
    rng = random.Random(3)
    b = Blocked()
    kept: list[tuple[FreePorts, tuple[int, ...]]] = []
    for _ in range(300):
        b.version += 1
        for _ in range(rng.randint(1, 6)):
            b.set(rng.randint(100, 160), rng.random() < 0.6)
        lo = rng.randint(100, 110)
        hi = lo + 2 * rng.randint(0, 25)
        listed = tuple(p for p in range(lo, hi + 1, 2) if p not in b.now)
        fp = FreePorts(b, lo, hi)
        assert len(fp) == len(listed)
        assert [fp[i] for i in range(len(fp))] == list(listed)
        if listed:
            assert fp.runs() == _runs(listed)
        kept.append((fp, listed))
    for fp, listed in kept:
        assert tuple(fp) == listed and fp == listed
        assert all((p in fp) == (p in listed) for p in range(95, 170))
