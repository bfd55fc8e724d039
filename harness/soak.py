"""`make soak`: a million injected SYNs on model and kernel, every pick compared.

Scenarios are generated from a seed (SoakPlan): SO_REUSEPORT groups of 1-256 in IPv4 and IPv6,
steered by the hash, by a cBPF program over the payload or the CPU, by an eBPF program selecting
from a sockarray, or by SO_INCOMING_CPU, with closes, shutdowns and re-listens between batches,
and requests left in the SYN queue across them whose ACKs then migrate (tcp_migrate_req, a
migrate: eBPF program) or are reset. They are generated and run a chunk at a time, so memory
stays bounded whatever the count; each lookup (syn, syn_only, ack) is counted exact, by property
or divergent, and a divergent scenario is written to --out as a `.scn` anyone can rerun.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare import Check, ScenarioResult
from harness.minimize import minimize
from harness.parser import parse_text
from harness.runner import Backend, Runner
from harness.running import running_profile
from harness.signals import run_interruptible
from model.profiles import Profile

SIZES = (1, 2, 3, 8, 17, 64, 100, 256)
STEERING = ("hash", "cbpf", "ebpf", "cpu", "hash", "ebpf-migrate")
LOOKUP_VERBS = ("syn", "syn_only", "ack")
SYN_VERBS = ("syn", "syn_only")  # each injects a SYN
CHUNK = 20  # scenarios generated and run at a time
KEEP = 5  # divergent scenarios written to --out (minimized)


@dataclass(frozen=True)
class SoakPlan:
    """One soak scenario: who listens, how the group steers, and how many SYNs."""

    index: int
    v6: bool
    size: int
    wildcard: bool
    steering: str  # one of STEERING
    migrate: bool  # net.ipv4.tcp_migrate_req = 1
    batches: int
    batch: int
    pending: int  # syn_only requests left in the SYN queue across each change

    @property
    def syns(self) -> int:
        return self.batches * (self.batch + self.pending)


def plans(total: int, seed: int, profile: Profile) -> Iterator[SoakPlan]:
    """Plans until `total` SYNs are planned; what the profile's kernel lacks is left out
    (tcp_migrate_req's reader and BPF_SK_REUSEPORT_SELECT_OR_MIGRATE came together in 5.14;
    Debian's 5.10 has the sysctl alone: Profile.migrate_req)."""
    rng = random.Random(seed)
    can_migrate = profile.migrate_req and not profile.unsupported(["net.ipv4.tcp_migrate_req"])
    planned, i = 0, 0
    while planned < total:
        steering = STEERING[i % len(STEERING)]
        if steering == "ebpf-migrate" and not can_migrate:
            steering = "ebpf"
        size = SIZES[(i // len(STEERING)) % len(SIZES)]
        plan = SoakPlan(i, v6=i % 3 == 2, size=size, wildcard=rng.random() < 0.5, steering=steering,
                        migrate=can_migrate and rng.random() < 0.5, batches=rng.choice((3, 4, 5)),
                        batch=rng.choice((300, 600, 900)), pending=rng.choice((0, 4, 12)))
        yield plan
        planned += plan.syns
        i += 1


@dataclass
class _Text:
    """Builds one plan's scenario: the members alive, shut down, and the sockarray's slots."""

    plan: SoakPlan
    rng: random.Random
    lines: list[str] = field(default_factory=list)
    alive: list[str] = field(default_factory=list)
    shut: list[str] = field(default_factory=list)
    slots: list[str | None] = field(default_factory=list)
    made: int = 0
    flows: int = 0

    @property
    def ebpf(self) -> bool:
        return self.plan.steering.startswith("ebpf")

    def source(self) -> str:
        """A fresh client tuple (198.18.0.0/16 or 2001:db8::/48, both on tun0): no SYN meets a
        connection or request of an earlier one."""
        i = self.flows
        self.flows += 1
        port = 1024 + (i * 7919) % 64000
        if self.plan.v6:
            return f"[2001:db8::{i // 60000 + 1:x}:{i % 60000 + 1:x}]:{port}"
        return f"198.18.{(i // 250) % 250 + 1}.{i % 250 + 1}:{port}"

    def server(self) -> str:
        return "[fd00::1]:8080" if self.plan.v6 else "10.0.0.1:8080"

    def slot_for(self, name: str) -> None:
        if self.ebpf and None in self.slots:
            k = self.slots.index(None)
            self.slots[k] = name
            self.lines.append(f"map_update(m, {k}, {name})")

    def leave_slot(self, name: str) -> None:
        # bpf_sk_reuseport_detach empties its slot at close and shutdown
        self.slots = [None if s == name else s for s in self.slots]

    def listen_new(self) -> None:
        p = self.plan
        name = f"s{self.made}"
        self.made += 1
        family = "AF_INET6" if p.v6 else "AF_INET"
        addr = ("[::]" if p.v6 else "0.0.0.0") if p.wildcard else ("[fd00::1]" if p.v6 else "10.0.0.1")
        self.lines += [f"{name} = socket({family}, SOCK_STREAM)", f"setsockopt({name}, SO_REUSEPORT, 1)"]
        if p.steering == "cpu" and self.rng.random() < 0.7:
            self.lines.append(f"setsockopt({name}, SO_INCOMING_CPU, {self.rng.choice((0, 1))})")
        self.lines += [f"bind({name}, {addr}:8080)", f"listen({name}, 4096)"]
        self.alive.append(name)
        self.slot_for(name)

    def program(self) -> None:
        """The group's program, attached to a member (it serves the whole group)."""
        p, r, first = self.plan, self.rng, self.alive[0]
        if p.steering == "cbpf":
            prog = r.choice((f"payload%{p.size}", f"payload%{p.size + 1}", "cpu"))
            self.lines.append(f"setsockopt({first}, SO_ATTACH_REUSEPORT_CBPF, {prog})")
        elif p.steering == "ebpf":
            prog = r.choice((f"m[payload%{p.size}]", f"m[payload%{p.size}]|drop", "m[0]"))
            self.lines.append(f"setsockopt({first}, SO_ATTACH_REUSEPORT_EBPF, {prog})")
        elif p.steering == "ebpf-migrate":
            self.lines.append(f"setsockopt({first}, SO_ATTACH_REUSEPORT_EBPF, migrate:m[{r.randrange(p.size)}])")

    def change(self) -> None:
        """Between batches: one or two members close or shut down, some shut-down ones listen
        again (reuseport_resurrect with tcp_migrate_req), and new ones join."""
        r = self.rng
        for _ in range(min(r.choice((1, 2)), len(self.alive) - 1) if len(self.alive) > 1 else 0):
            victim = self.alive.pop(r.choice((len(self.alive) // 2, len(self.alive) - 1)))
            verb = r.choice(("close", "close", "shutdown"))
            self.lines.append(f"{verb}({victim})")
            self.leave_slot(victim)
            if verb == "shutdown":
                self.shut.append(victim)
        if self.shut and r.random() < 0.5:
            name = self.shut.pop(0)
            self.lines.append(f"listen({name}, 4096)")
            self.alive.append(name)
            self.slot_for(name)
        for _ in range(r.choice((0, 1, 2))):
            self.listen_new()

    def text(self) -> str:
        p, r = self.plan, self.rng
        self.lines.append(f"# soak {p}")
        if p.migrate:
            self.lines.append("@sysctl net.ipv4.tcp_migrate_req = 1")
        if p.steering == "cpu" or (p.steering == "cbpf" and r.random() < 0.5):
            self.lines.append(f"@cpu {r.choice((0, 1))}")
        payload = ", payload=4" if p.steering in ("cbpf", "ebpf") else ""
        if self.ebpf:
            self.lines.append(f"m = sockarray({p.size})")
            self.slots = [None] * p.size
        for _ in range(p.size):
            self.listen_new()
        self.program()
        for b in range(p.batches):
            self.lines += [f"syn({self.source()} > {self.server()}{payload})" for _ in range(p.batch)]
            pending = [self.source() for _ in range(p.pending)]
            self.lines += [f"syn_only({f} > {self.server()}{payload})" for f in pending]
            self.lines.append("inuse(tcp6)" if p.v6 else "inuse(tcp)")
            if b + 1 < p.batches:
                self.change()
            # the ACKs of the requests left across the change: completed where they wait, migrated
            # from a listener that left, or reset
            self.lines += [f"ack({f} > {self.server()})" for f in pending]
        self.lines.append("inuse(tcp6)" if p.v6 else "inuse(tcp)")
        return "\n".join(self.lines) + "\n"


def scenario_text(plan: SoakPlan, seed: int) -> str:
    return _Text(plan, random.Random(f"{seed}:{plan.index}")).text()


@dataclass
class SoakTally:
    """Lookups (syn, syn_only, ack) by how they were checked; SYNs injected."""

    scenarios: int = 0
    syns: int = 0
    exact: int = 0
    by_property: int = 0
    divergent: int = 0
    unchecked: int = 0  # compared with nothing: a harness fault, printed
    skipped: list[str] = field(default_factory=list)
    # diverged where kernel timers the model has no clock for may have acted (Runner.finish:
    # a slow, emulated kernel's request timers): their lookups are not counted
    timing: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return bool(self.syns) and not (self.divergent or self.unchecked or self.skipped)

    def add(self, r: ScenarioResult) -> None:
        self.scenarios += 1
        if r.timing:
            self.timing.append(f"{r.scenario.path}: {r.skipped}")
            return
        if r.skipped or r.error:
            self.skipped.append(f"{r.scenario.path}: {r.skipped or r.error}")
            return
        for s in r.steps:
            if s.step.verb not in LOOKUP_VERBS:
                continue
            self.syns += s.step.verb in SYN_VERBS
            if not s.agreed:
                self.divergent += 1
            elif Check.PROPERTY in s.checks:
                self.by_property += 1
            elif Check.EXACT in s.checks:
                self.exact += 1
            else:
                self.unchecked += 1

    @property
    def lookups(self) -> int:
        return self.exact + self.by_property + self.divergent + self.unchecked

    def line(self) -> str:
        share = 100 * self.exact / self.lookups if self.lookups else 0.0
        return (f"{self.syns} SYNs injected in {self.scenarios} scenarios; {self.lookups} lookups: "
                f"{self.exact} exact ({share:.2f}%), {self.by_property} by property, "
                f"{self.divergent} divergent, {self.unchecked} unchecked, in {self.seconds:.0f} s"
                + (f"; {len(self.timing)} scenario(s) not counted (kernel timers, Runner.finish)"
                   if self.timing else ""))


def run(runner: Runner, syns: int, seed: int, out: Path, say=print, shrink: bool = True) -> SoakTally:
    """Plans for `syns` SYNs, generated and run a chunk at a time; the first KEEP divergent
    scenarios written to `out`, minimized unless `shrink` is false (a guest: each rerun of a
    2,000-step scenario takes minutes under TCG)."""
    tally, kept, t0 = SoakTally(), 0, time.monotonic()
    todo = plans(syns, seed, runner.profile)
    while True:
        chunk = [parse_text(Path(f"<soak seed {seed} #{p.index}>"), scenario_text(p, seed))
                 for _, p in zip(range(CHUNK), todo, strict=False)]
        if not chunk:
            break
        for r in runner.run(chunk):
            tally.add(r)
            if r.divergent and r.skipped:  # a timing skip (Runner.finish): said, not minimized
                first = r.divergent[0]
                say(f"{r.scenario.path} line {first.step.line} {first.step.call}: "
                    f"{'; '.join(first.problems)} (not counted: {r.skipped})")
            elif r.divergent and kept < KEEP:
                out.mkdir(parents=True, exist_ok=True)
                path = out / f"seed{seed}-{kept}.scn"
                first = r.divergent[0]
                if shrink:
                    reduction = minimize(r, runner.run_one)
                    path.write_text(f"# {reduction.label}\n{reduction.text}")
                else:
                    whole = "\n".join(r.scenario.lines)
                    path.write_text(f"# diverged at line {first.step.line} (not minimized)\n{whole}\n")
                say(f"{path}: {r.scenario.path} line {first.step.line} {first.step.call}: "
                    f"{'; '.join(first.problems)}")
                kept += 1
        elapsed = time.monotonic() - t0
        say(f"[{tally.syns}/{syns}] {tally.divergent} divergent, {elapsed:.0f} s ({tally.syns / elapsed:.0f} SYNs/s)")
    tally.seconds = time.monotonic() - t0
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--syns", type=int, default=1_000_000, help="SYNs to inject (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("reports/soak"), help="where divergences are written")
    ap.add_argument("--no-minimize", dest="minimize", action="store_false",
                    help="write divergent scenarios whole (guests: a rerun takes minutes under TCG)")
    args = ap.parse_args(argv)
    if args.syns < 1:
        ap.error("--syns must be at least 1")
    from harness.worker import Pool  # the kernel side: only once the arguments are good

    gc.set_threshold(200_000, 50, 100)
    profile, note = running_profile()
    print(f"soak: {args.syns} SYNs, seed {args.seed}, profile {profile.name}" + (f" ({note})" if note else ""),
          flush=True)
    with Pool() as pool:
        runner = Runner(profile, Backend.BOTH, 0, pool, expectations=False)
        tally = run(runner, args.syns, args.seed, args.out, say=lambda s: print(s, flush=True),
                    shrink=args.minimize)
    if runner.hash_problem:
        print(f"hash calibration: {runner.hash_problem}")
    for s in tally.skipped[:10]:
        print(f"not run: {s}")
    print(f"soak {'passed' if tally.passed else 'FAILED'}: {tally.line()}")
    return 0 if tally.passed else 1


if __name__ == "__main__":
    sys.exit(run_interruptible("sockharness-soak", main))
