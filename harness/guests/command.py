"""`sockharness kernels`: fetch, boot each kernel, run the corpus in it, build the matrix.

Progress is printed per kernel as it happens; the elapsed time of the whole matrix is printed
at the end. Exit EXIT_AGREE (0) when every scenario agrees (or is skipped for a printed reason)
on every kernel, EXIT_DIVERGE (1) on a divergence or (Debian's kernels) a kernel whose corpus
did not run. With --kernel PATH, for `git bisect run`: EXIT_UNTESTABLE (125, "skip this
commit") when that kernel could not be prepared, did not boot or gave no corpus results
(timeout, a module the guest needs found nowhere).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from harness import html_report, kcidb, ktap, probe
from harness.calibrate import OFFLOAD_ENV
from harness.guests import fetch, initramfs, matrix, offload, qemu, reap
from harness.guests.fetch import KERNELS, Release
from harness.kcidb import ORIGIN as KCIDB_ORIGIN
from harness.runner import load
from harness.running import running_profile
from model.profiles import PROFILES, profile_for_release

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "kernels"
# Kernel tests run in each guest: the hash formula (both inet_ehashfn variants: calibration
# and exact prediction under the kernel's profile), deliberately broken rules caught, and
# namespace cleanup. Left out: tests whose thresholds assume native speed (a 30 s process
# start in test_cleanup's signal tests, the injector's TUN drain cadence in test_inject), and
# the 100,000-SYN and fuzz tests, which repeat at length what the corpus checks (~260 s each
# under TCG).
GUEST_TESTS = ("tests/kernel/test_hash_formula.py", "tests/kernel/test_harness_can_fail.py",
               "tests/kernel/test_cleanup.py::test_pool_removes_its_namespace",
               "tests/kernel/test_cleanup.py::test_sysctl_refused_in_the_host_namespace")
# "exercised" fields: where a kernel's profile differs from the host's (6.18); 6.18's own
# against 6.12's
REFERENCE, REFERENCE_OF_REFERENCE = "6.18", "6.12"
_print_lock = threading.Lock()
# exit statuses; 125 is `git bisect run`'s "cannot test this commit"
EXIT_AGREE, EXIT_DIVERGE, EXIT_UNTESTABLE = 0, 1, 125


@dataclass(frozen=True)
class Target:
    """One kernel to boot as a matrix column: its name (results folder and label), the model
    profile the guest runs under (None: the guest infers the running kernel's), its Guest, and
    the wanted modules found nowhere (a kernel given by path)."""

    name: str
    profile: str | None
    guest: qemu.Guest
    missing: tuple[str, ...] = ()


def debian_target(release: Release, guest: qemu.Guest) -> Target:
    return Target(release.version, release.version, guest)


def own_target(path: Path, modules: Path | None) -> Target:
    """--kernel PATH [--modules DIR]: the column is named after the kernel's release, run under
    the profile of exactly that version if the model has one."""
    guest = fetch.own_kernel(path, modules)
    try:
        profile, note = profile_for_release(guest.release)
    except ValueError:
        profile, note = None, "not a release"
    _, missing = initramfs.plan(guest.moddir)
    return Target(guest.release.replace("/", "_"), None if note else profile.name, guest,
                  tuple(missing))


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


def choose_accel(tools: qemu.Tools, guest: qemu.Guest, out: Path) -> tuple[qemu.Accel, str]:
    """KVM if it boots this kernel and runs a command, else TCG; never assumed."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return qemu.Accel.TCG, "no usable /dev/kvm"
    probe = qemu.boot(tools, guest, "true", accel=qemu.Accel.KVM, writable=[], timeout=60,
                      log=out / "kvm-probe.log")
    if probe.exit_code == 0:
        return qemu.Accel.KVM, f"KVM booted {guest.release} in {probe.seconds:.1f} s"
    lines = [ln for ln in probe.log.read_text(errors="replace").splitlines() if ln.strip()]
    why = lines[-1][:120] if lines else probe.reason
    return qemu.Accel.TCG, f"KVM could not boot a kernel here ({why}); using TCG"


def run_kernel(target: Target, tools: qemu.Tools, accel: qemu.Accel, out: Path, *,
               plan: GuestPlan, timeout: float) -> matrix.Column:
    """Boot one kernel, run the corpus (and the plan's tests) in it, read its results back; a
    kernel that cannot be prepared is a column with the reason, not the end of the matrix."""
    try:
        return _run_kernel(target, tools, accel, out, plan=plan, timeout=timeout)
    except (OSError, ValueError) as e:  # FileNotFoundError (a module), a bad results file
        say(f"[{target.name}] failed: {e}")
        return matrix.Column(target.name, target.guest.release, target.profile or "",
                             problem=f"{type(e).__name__}: {e}")


def guest_command(kout: Path, profile: str | None, tests: tuple[str, ...],
                  corpus: tuple[str, ...] = ("tests/scenarios",), probe: bool = True, soak: int = 0) -> str:
    """The guest's shell line, every path quoted; it first checks that the project and its
    python are there (a missing one is reported as one line, qemu.MISSING_MARK)."""
    q = shlex.quote
    line = (f"cd {q(str(ROOT))} && {q(sys.executable)} -m harness.guests.guest {q(str(kout))}"
            + (f" --profile {q(profile)}" if profile else "")
            + " --kernel-tests" + "".join(f" {q(t)}" for t in tests)
            + " --corpus" + "".join(f" {q(c)}" for c in corpus)
            + ("" if probe else " --no-probe")
            + (f" --soak {soak}" if soak else ""))
    return qemu.guarded(line, [ROOT, Path(sys.executable)])


def guest_readonly() -> list[Path]:
    """What the guest reads from the host besides the results: the project, the virtualenv
    and the python it was made from (bound back if under a guest tmpfs: qemu.init_script)."""
    return [ROOT, Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent]


def _run_kernel(target: Target, tools: qemu.Tools, accel: qemu.Accel, out: Path, *,
                plan: GuestPlan, timeout: float) -> matrix.Column:
    name, guest = target.name, target.guest
    kout = out / name
    numba = (CACHE / "numba").resolve()
    numba.mkdir(parents=True, exist_ok=True)
    command = guest_command(kout, target.profile, plan.tests, plan.corpus, plan.probe, plan.soak)
    cpus = plan.cpus
    say(f"[{name}] booting {guest.release} ({accel.name}, {cpus} CPUs)")

    def relay(line: str) -> None:
        if line.startswith("SOCKH-PROGRESS "):
            say(f"[{name}] {line[len('SOCKH-PROGRESS '):]}")
        elif line.startswith(("SOCKH: ", qemu.MISSING_MARK)):  # /init: an insmod failed
            say(f"[{name}] guest: {line.strip()}")
        elif "Kernel panic" in line or "BUG:" in line or "Oops" in line:
            say(f"[{name}] console: {line.strip()}")

    with offload.Server(kout / "calibrate") as server:
        result = qemu.boot(tools, guest, command, accel=accel, writable=[kout, numba],
                           readonly=guest_readonly(),
                           env={"NUMBA_CACHE_DIR": str(numba), OFFLOAD_ENV: str(server.folder)},
                           log=kout / "console.log", timeout=timeout, cpus=cpus, on_line=relay)
    column = matrix.Column(name, guest.release, target.profile or "", result.seconds,
                           swap_profile=f"{REFERENCE}'s rules",
                           missing=[m for m in target.missing if m not in result.builtin])
    if target.missing:
        say(f"[{name}] " + (f"without module(s) {', '.join(column.missing)}: not built in either"
                            if column.missing else
                            f"module(s) {', '.join(target.missing)}: built in after all"))
    corpus = kout / "corpus.json"
    if corpus.exists():
        column.cells, meta = matrix.cells_from_json(corpus)
        column.report = corpus
        column.profile = column.profile or str(meta.get("profile", ""))  # the guest's own pick
        if meta.get("complete") is False:  # cut short (signal, worker crash): what ran
            column.problem = f"corpus run incomplete: {meta.get('incomplete', '')}"
    else:
        column.problem = result.reason or f"no corpus results (guest exit {result.exit_code}); see {kout}"
    if (kout / "swap.json").exists():
        column.swapped, _ = matrix.cells_from_json(kout / "swap.json")
    meta = kout / "meta.json"
    if meta.exists() and "kernel-tests" in json.loads(meta.read_text())["phases"]:
        tail = (kout / "kernel-tests.log").read_text(errors="replace").strip().splitlines()
        column.kernel_tests = tail[-1] if tail else ""
    if meta.exists() and "soak" in json.loads(meta.read_text())["phases"]:
        tail = (kout / "soak.log").read_text(errors="replace").strip().splitlines()
        column.soak = tail[-1] if tail else "soak: no output"
    if (kout / "probe.log").exists():
        tail = (kout / "probe.log").read_text(errors="replace").strip().splitlines()
        column.probe = next((ln for ln in reversed(tail) if ln.startswith("recovered")), tail[-1] if tail else "")
    status = column.problem or (f"{column.count(matrix.Status.AGREE)} agree, "
                                f"{column.count(matrix.Status.DIVERGE)} diverge, "
                                f"{column.count(matrix.Status.SKIPPED)} skipped")
    say(f"[{name}] done in {result.seconds:.0f} s: {status}"
        + (f"; kernel tests: {column.kernel_tests}" if column.kernel_tests else "")
        + (f"; probe: {column.probe}" if column.probe else "")
        + (f"; {column.soak}" if column.soak else ""))
    return column


def _key(path: Path) -> str:
    """A scenario's path as the guests write it: relative to the project."""
    return str(path.resolve().relative_to(ROOT)) if path.is_absolute() else str(path)


def _exercised(profile: str, scenarios: list) -> dict[str, list[str]]:
    """Field -> scenarios whose model outcome changes with the reference profile's value
    (for the reference itself: against REFERENCE_OF_REFERENCE). Pure, so cached under
    .cache/kernels/exercised/ by the digest of its inputs."""
    other = PROFILES[REFERENCE if profile != REFERENCE else REFERENCE_OF_REFERENCE]
    cached = CACHE / "exercised" / f"{profile}-{other.name}-{probe.inputs_digest(Path(s.path) for s in scenarios)}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    found = matrix.exercised(PROFILES[profile], other, scenarios)
    result = {k: [_key(Path(p)) for p in v] for k, v in found.items()}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result))
    return result


def _swap_settings(profile: str) -> dict[str, str]:
    """The --set overrides that give `profile` the other profile's rules, except the hash
    formula (so hash picks stay exact and a rule's effect on them shows)."""
    other = PROFILES[REFERENCE if profile != REFERENCE else REFERENCE_OF_REFERENCE]
    return {name: str(flipped_value).lower()
            for name, flipped_value in matrix.differing(PROFILES[profile], other)}


def run_host(out: Path, scenarios: list, corpus: tuple[str, ...] = ("tests/scenarios",)) -> matrix.Column:
    """The corpus on the running kernel too, as the matrix's host column."""
    hout = out / "host"
    hout.mkdir(parents=True, exist_ok=True)
    release = platform.release()
    profile, _ = running_profile()
    say(f"[host] corpus on {release} (profile {profile.name})")
    t0 = time.monotonic()
    with open(hout / "corpus.log", "w") as log:
        subprocess.run([sys.executable, "-m", "harness", "run", *corpus, "-q",
                        "--no-minimize", "--json", str(hout / "corpus.json")],
                       cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    column = matrix.Column(f"{profile.name} (host)", release, profile.name, time.monotonic() - t0,
                           swap_profile=f"{REFERENCE_OF_REFERENCE}'s rules")
    if (hout / "corpus.json").exists():
        column.cells, _ = matrix.cells_from_json(hout / "corpus.json")
        column.report = hout / "corpus.json"
    else:
        column.problem = f"no corpus results; see {hout / 'corpus.log'}"
    say(f"[host] done in {column.seconds:.0f} s: {column.count(matrix.Status.AGREE)} agree, "
        f"{column.count(matrix.Status.DIVERGE)} diverge, {column.count(matrix.Status.SKIPPED)} skipped")
    column.exercised = _exercised(profile.name, scenarios)
    swap = sorted({p for paths in column.exercised.values() for p in paths})
    if swap:
        settings = [w for k, v in _swap_settings(profile.name).items() for w in ("--set", f"{k}={v}")]
        subprocess.run([sys.executable, "-m", "harness", "run", *swap, "-q", "--no-minimize",
                        "--no-expect", "--profile", profile.name, *settings,
                        "--json", str(hout / "swap.json")],
                       cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if (hout / "swap.json").exists():
            column.swapped, _ = matrix.cells_from_json(hout / "swap.json")
    return column


def _targets(args: argparse.Namespace) -> list[Target]:
    """Debian's kernels named by --versions (fetched into the cache), or the one --kernel names."""
    if args.kernel:
        return [own_target(Path(args.kernel), Path(args.modules) if args.modules else None)]
    wanted = args.versions or [k.version for k in KERNELS]
    unknown = [v for v in wanted if v not in {k.version for k in KERNELS}]
    if unknown:
        raise ValueError(f"unknown kernel version(s) {unknown}; choose from "
                         f"{', '.join(k.version for k in KERNELS)}")
    return [debian_target(k, fetch.fetch_release(k, CACHE, say)) for k in KERNELS if k.version in wanted]


def exit_status(columns: list[matrix.Column], own: Target | None) -> int:
    """EXIT_UNTESTABLE if the kernel given by path did not run its corpus or lacks a module the
    guest needs; else EXIT_DIVERGE on any divergence (or a Debian/host column without results),
    else EXIT_AGREE."""
    if own is not None:
        mine = next((c for c in columns if c.version == own.name), None)
        if mine is None or mine.problem or not mine.cells or mine.missing:
            return EXIT_UNTESTABLE
    diverged = any(c.problem or c.count(matrix.Status.DIVERGE) or c.soak_failed for c in columns)
    return EXIT_DIVERGE if diverged else EXIT_AGREE


@dataclass(frozen=True)
class Outputs:
    """What `kernels` writes besides its folder: the KTAP document on a stream, a KCIDB
    file; `started` (when the matrix began) names the KCIDB run."""

    ktap: TextIO | None = None
    kcidb: Path | None = None
    kcidb_origin: str = KCIDB_ORIGIN  # (the field above hides the module here)
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


def main(args: argparse.Namespace, outputs: Outputs | None = None) -> int:
    """The stages: the targets, the plan (accelerator, jobs, CPUs), the guests booted (the
    host's column beside them), the matrix (and `outputs`) and the exit status."""
    start = time.monotonic()
    if args.kernel and args.versions:
        raise ValueError("--kernel PATH boots that kernel instead of Debian's: no --versions with it")
    if args.modules and not args.kernel:
        raise ValueError("--modules DIR goes with --kernel PATH")
    corpus_paths(getattr(args, "scenarios", None))  # a bad path is said before anything boots
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stale = reap.reap_stale()
    if stale:
        say(f"reaped {len(stale)} leftover(s) of a killed run: {', '.join(stale)}")
    fetch.fetch_tools(CACHE, say)
    tools = qemu.find_tools(CACHE)
    own = None
    if args.kernel:
        try:
            targets = _targets(args)
        except (OSError, ValueError) as e:  # no bzImage (a failed build), not a bzImage
            say(f"--kernel {args.kernel}: cannot boot it: {e}")
            return EXIT_UNTESTABLE
        own = targets[0]
        _announce_own(own)
    else:
        targets = _targets(args)
    plan = _plan(args, tools, targets, out)
    columns, scenarios = _boot_all(args, plan, tools, targets, out)
    return _report(columns, scenarios, out, plan.accel, time.monotonic() - start, own, outputs or Outputs())


def _announce_own(own: Target) -> None:
    say(f"[{own.name}] {own.guest.vmlinuz}, modules "
        f"{own.guest.moddir or 'none (a bare image: what the guest needs must be built in)'}; "
        + (f"profile {own.profile}" if own.profile else
           "no profile of that version: the guest infers the running kernel's"))
    if own.missing:
        say(f"[{own.name}] modules not found: {', '.join(own.missing)} (neither under "
            f"{own.guest.moddir or '--modules'} nor in its modules.builtin); the guest checks "
            f"whether the kernel has them built in: a module it lacks makes the run a skip "
            f"(exit {EXIT_UNTESTABLE})")


@dataclass(frozen=True)
class GuestPlan:
    """How the guests run: the accelerator, how many at once, CPUs each, the tests in each."""

    accel: qemu.Accel
    jobs: int
    cpus: int
    tests: tuple[str, ...]
    corpus: tuple[str, ...] = ("tests/scenarios",)  # paths under ROOT, as the guest reads them
    probe: bool = True
    soak: int = 0  # SYNs of a soak run after the tests (harness/soak.py), 0: none


def _plan(args: argparse.Namespace, tools: qemu.Tools, targets: list[Target], out: Path) -> GuestPlan:
    """The plan, said; a fresh results folder for each target (the guest waits for swap.txt
    there)."""
    accel, why = choose_accel(tools, targets[0].guest, out)
    say(f"accelerator: {accel.name} ({why})")
    jobs = max(1, min(args.jobs or (os.cpu_count() or 1), len(targets)))
    # two CPUs per guest whatever the jobs: @cpu 1 scenarios and SO_INCOMING_CPU need a second
    cpus = args.cpus or 2
    tests = tuple(args.kernel_tests) if args.kernel_tests is not None else GUEST_TESTS
    for t in targets:
        kout = out / t.name
        shutil.rmtree(kout, ignore_errors=True)
        kout.mkdir(parents=True)
    if accel is qemu.Accel.TCG and jobs * cpus > (os.cpu_count() or 1):
        accel = qemu.Accel.TCG_SINGLE
    say(f"running {len(targets)} kernel(s), {jobs} at a time, {cpus} CPU(s) each ({accel.value})")
    return GuestPlan(accel, jobs, cpus, tests, corpus_paths(getattr(args, "scenarios", None)),
                     getattr(args, "probe", True), getattr(args, "soak", 0))


def corpus_paths(paths: list[str] | None) -> tuple[str, ...]:
    """--scenarios as paths relative to the project (the guests see only the project); a
    path outside it or missing is a ValueError saying so."""
    out = []
    for p in paths or ["tests/scenarios"]:
        full = (ROOT / p).resolve() if not Path(p).is_absolute() else Path(p).resolve()
        if not full.exists():
            full = Path(p).resolve()  # relative to where the command runs
        if not full.exists():
            raise ValueError(f"--scenarios {p}: no such file or folder")
        if not full.is_relative_to(ROOT):
            raise ValueError(f"--scenarios {p}: not inside the project ({ROOT}), which is all a guest can read")
        out.append(str(full.relative_to(ROOT)))
    return tuple(out)


def _write_swaps(targets: list[Target], scenarios: list, out: Path) -> dict[str, dict[str, list[str]]]:
    """Which scenarios each kernel's profile fields decide (by field), written to the guest's
    swap.txt: the guest reruns those under the reference profile after its corpus."""
    exercised = {}
    for t in targets:
        exercised[t.name] = _exercised(t.profile, scenarios) if t.profile else {}
        swap = sorted({p for paths in exercised[t.name].values() for p in paths})
        settings = _swap_settings(t.profile) if t.profile else {}
        tmp = out / t.name / "swap.tmp"
        tmp.write_text("".join(f"set {k}={v}\n" for k, v in settings.items())
                       + "".join(f"path {p}\n" for p in swap))
        tmp.rename(out / t.name / "swap.txt")
        if t.profile:
            say(f"[{t.name}] {len(swap)} scenario(s) depend on its profile's fields; "
                f"they rerun with {REFERENCE}'s values after the corpus")
    return exercised


def _boot_all(args: argparse.Namespace, plan: GuestPlan, tools: qemu.Tools, targets: list[Target],
              out: Path) -> tuple[list[matrix.Column], list]:
    """Every target booted, `plan.jobs` at a time, and the host's own column if asked; a
    Ctrl-C or SIGTERM starts no new guest and stops the running ones."""
    pool = ThreadPoolExecutor(max_workers=plan.jobs)
    try:
        futures = [pool.submit(run_kernel, t, tools, plan.accel, out, plan=plan,
                               timeout=args.timeout) for t in targets]
        # while the guests boot: the swap lists, then the probe's plan, before any guest's
        # probe phase reads it (the project is read-only there: a guest without it would
        # compute it itself, slowly)
        scenarios = load([ROOT / p for p in plan.corpus])
        exercised = _write_swaps(targets, scenarios, out)
        if plan.probe:
            probe.cached_plan(load([ROOT / "tests/scenarios"]))
        columns = [run_host(out, scenarios, plan.corpus)] if args.host else []
        columns += [f.result() for f in futures]
        for c in columns:
            c.exercised = c.exercised or exercised.get(c.version, {})
    except BaseException:  # Ctrl-C, SIGTERM: no new guest, the running ones stopped
        pool.shutdown(wait=False, cancel_futures=True)
        qemu.stop_all()
        raise
    finally:
        pool.shutdown(wait=True)
    return columns, scenarios


def _report(columns: list[matrix.Column], scenarios: list, out: Path, accel: qemu.Accel,
            elapsed: float, own: Target | None, outputs: Outputs) -> int:
    """The matrix (markdown and HTML files, the short table printed; KTAP and KCIDB where
    `outputs` asks: the table is then on stderr) and the exit status."""
    if outputs.ktap is not None:
        outputs.ktap.write(ktap.matrix_document(columns))
        outputs.ktap.flush()
    if outputs.kcidb is not None:
        run = outputs.started.strftime("%Y%m%dT%H%M%SZ")
        outputs.kcidb.write_text(json.dumps(kcidb.document(columns, run=run, started=outputs.started,
                                                           origin=outputs.kcidb_origin),
                                            indent=1) + "\n")
        print(f"KCIDB v{kcidb.SCHEMA_VERSION['major']}.{kcidb.SCHEMA_VERSION['minor']}: {outputs.kcidb}")
    (out / "matrix.md").write_text(matrix.markdown(columns, full=True))
    (out / "matrix.html").write_text(html_report.matrix_page(columns, "sockharness: scenario x kernel"))
    print()
    print(matrix.markdown(columns, full=False))
    print(f"matrix: {len(columns)} kernel(s), {len(scenarios)} scenarios, "
          f"{int(elapsed // 60)} min {elapsed % 60:.0f} s ({accel.name}); "
          f"full table: {out / 'matrix.md'}, {out / 'matrix.html'}")
    code = exit_status(columns, own)
    if own is not None:
        print(f"exit {code}: " + {EXIT_AGREE: "every scenario agrees", EXIT_DIVERGE: "a divergence",
                                  EXIT_UNTESTABLE: "the kernel could not be tested"}[code])
    return code
