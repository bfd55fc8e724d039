"""The `sockharness` command: run, record, explain, profiles."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from harness import record
from harness.compare import ScenarioResult
from harness.environment import EnvironmentProblem
from harness.ktap import KtapWriter
from harness.minimize import MAX_CANDIDATES, Progress, minimize
from harness.model_backend import ModelExecutor
from harness.parser import KNOWN_VERSIONS, ScenarioError
from harness.report import (
    Summary,
    divergence_text,
    lookups_line,
    scenario_json,
    steps_line,
    summary_table,
    to_json,
    visible,
    write_json,
    write_junit,
)
from harness.runner import Backend, Runner, collect, load
from harness.running import ensure_inferred, running_profile
from harness.scenario import version_text
from harness.signals import deferred, run_interruptible, why_stopped
from harness.spec import spec_for
from model.profiles import (
    HISTORICAL,
    PROFILES,
    UNBOOTED,
    Profile,
    parse_release,
    profile_for_release,
    with_fields,
)

if TYPE_CHECKING:  # the kernel side loads only in commands that run on it (_pool)
    from harness.worker import Pool

EXIT_OK, EXIT_DIVERGED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or environment: exit 2 with the message."""


def _profile(name: str | None, settings: list[str] | None = None) -> tuple[Profile, str]:
    if name is None:
        profile, note = running_profile()
    elif name not in PROFILES:
        raise UsageError(f"unknown profile {name!r}; known: {', '.join(sorted(PROFILES))}")
    else:
        profile, note = PROFILES[name], ""
    pairs = {}
    for item in settings or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set takes FIELD=VALUE, not {item!r}")
        pairs[key.strip()] = value.strip()
    try:
        return with_fields(profile, pairs), note
    except ValueError as e:
        raise UsageError(f"--set: {e}; fields: see `sockharness profiles`") from e


def _progress(quiet: bool, done: int = 0, total: int | None = None, feed=None):
    """Progress lines, numbered across batches (`done` before this one, of `total`); `feed`
    writes the new result into the KTAP document first."""
    def show(i: int, n: int, r: ScenarioResult) -> None:
        if feed is not None:
            feed()
        i, n = done + i, total or n
        if r.skipped:
            status = f"skipped ({r.skipped})"
        elif r.agreed:
            status = "ok"
        else:
            status = f"DIVERGED at line {r.divergent[0].step.line}"
        if not quiet or not r.agreed:
            print(visible(f"[{i}/{n}] {r.scenario.path}: {status}"), flush=True)
        elif i % 50 == 0 or i == n:
            print(f"[{i}/{n}] …", flush=True)
    return show


MINIMIZE_QUIET_FOR = 25  # candidates a minimization tries before it shows progress
MINIMIZE_EVERY = 25  # then a line every this many


def _minimize_progress(quiet: bool):
    """Progress lines on stderr for a minimization that takes more than a few reruns."""
    def show(p: Progress) -> None:
        if quiet or p.candidates < MINIMIZE_QUIET_FOR or p.candidates % MINIMIZE_EVERY:
            return
        print(visible(f"minimizing {p.path}: {p.candidates} of at most {p.budget} candidates, "
                      f"{p.steps_before} -> {p.steps_now} steps"), file=sys.stderr, flush=True)
    return show


def _output(option: str, text: str | None) -> Path | None:
    """A report file named on the command line, checked before anything runs: not a
    folder, in a folder that exists (none is created) and may be written."""
    if text is None:
        return None
    path = Path(text)
    if text.endswith("/") or path.is_dir():
        raise UsageError(visible(f"{option} {text}: is a folder; give a file name"))
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(visible(f"{option} {text}: no folder {folder} (create it first)"))
    if not os.access(path if path.exists() else folder, os.W_OK):
        raise UsageError(visible(f"{option} {text}: not writable"))
    return path


def _write_html(path: Path, results: list[ScenarioResult], meta: dict) -> None:
    from harness.html_report import run_page

    path.write_text(run_page(to_json(results, meta)))


# The report files `run` can write: the option, its writer, how the file is announced.
REPORT_FILES = (("--json", write_json, "report"), ("--junit", write_junit, "JUnit XML"),
                ("--html", _write_html, "HTML report"))
Outputs = dict[str, Path]  # option -> the file it names, those given


def _outputs(args: argparse.Namespace) -> Outputs:
    """The report files asked for, each checked (_output); no two the same file."""
    outputs: Outputs = {}
    for option, _, _ in REPORT_FILES:
        path = _output(option, getattr(args, option.lstrip("-")))
        if path is None:
            continue
        same = [o for o, q in outputs.items() if q.resolve() == path.resolve()]
        if same:
            raise UsageError(visible(f"{same[0]} and {option} name the same file, {path}"))
        outputs[option] = path
    return outputs


def _write_reports(outputs: Outputs, results: list[ScenarioResult], meta: dict, say=print) -> None:
    first = True
    for option, write, label in REPORT_FILES:
        if option in outputs:
            write(outputs[option], results, meta)
            say(visible(f"{chr(10) if first else ''}{label}: {outputs[option]}"))
            first = False


def _write_incomplete(outputs: Outputs, results: list[ScenarioResult],
                      meta: dict, stopped: BaseException, total: int) -> None:
    """After Ctrl-C, SIGTERM or a worker's failure: the reports of the runs that finished,
    marked "complete": false with what stopped the run and when."""
    if not outputs:
        return
    ran = (f"after {len(results)} of {total} scenario runs" if len(results) < total
           else f"after all {total} scenario runs, while minimizing")
    meta.update(complete=False, incomplete=f"{why_stopped(stopped)} {ran}")
    try:
        with deferred():
            _write_reports(outputs, results, meta, say=lambda m: print(
                f"{m.strip()} (incomplete: {meta['incomplete']})", file=sys.stderr))
    except OSError as e:
        print(visible(f"sockharness: the incomplete reports could not be written: {e}"), file=sys.stderr)


def _pool() -> Pool:
    """The kernel side (namespace workers), loaded only by commands that run on the kernel:
    `explain` and model-only runs never load pyroute2 or the injector."""
    from harness.worker import Pool

    return Pool()


def cmd_run(args: argparse.Namespace) -> int:
    if not args.ktap:
        return _run(args, None)
    # --ktap: the document alone on stdout, everything the run prints today on stderr
    writer = KtapWriter(sys.stdout)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            return _run(args, writer)
        except BaseException as e:
            reason = str(e) if isinstance(e, (ScenarioError, UsageError)) else why_stopped(e)
            with deferred():  # a second signal waits until the document is whole
                writer.close(stopped=reason)
            raise


def _ktap_feed(writer: KtapWriter, results: list[ScenarioResult]):
    """Writes the results not yet in the document (their run numbers counted as they come)."""
    seen: Counter[str] = Counter()

    def feed() -> None:
        for r in results[writer.added:]:
            seen[str(r.scenario.path)] += 1
            writer.add(scenario_json(r, seen[str(r.scenario.path)]))
    return feed


def _batches(scenarios: list, repeat: int, by_feature: bool) -> list[tuple[str, list]]:
    """What each runner.run call takes, with the line announcing it: every scenario per
    repeat; or (--ktap, to stream nested features) each feature's runs together, features
    in first-appearance order (results are independent of the order)."""
    if not by_feature:
        return [(f"run {k + 1} of {repeat}" if repeat > 1 else "", scenarios) for k in range(repeat)]
    features: dict[str, list] = {}
    for sc in scenarios:
        features.setdefault(sc.feature, []).append(sc)
    return [(f"{name}: run {k + 1} of {repeat}" if repeat > 1 else "", group)
            for name, group in features.items() for k in range(repeat)]


def _run(args: argparse.Namespace, writer: KtapWriter | None) -> int:
    outputs = _outputs(args)  # a bad report path fails now, not after the run
    if args.profile is None and args.backend != "model":
        ensure_inferred()  # a kernel without a profile of its own: infer it first (root)
    profile, note = _profile(args.profile, args.set)
    backend = Backend(args.backend)
    scenarios = load(args.paths)
    if note:
        print(f"note: {note}")
    print(f"profile {profile.name}; backend {backend.value}; {len(scenarios)} scenario(s)")
    results: list[ScenarioResult] = []
    meta: dict | None = None
    feed = None
    total = len(scenarios) * args.repeat
    t0 = time.monotonic()
    try:
        pool = _pool() if backend.uses_kernel else None
        try:
            if pool and pool.reaped:
                print(f"reaped {len(pool.reaped)} namespace(s) left by a killed run: {', '.join(pool.reaped)}")
            runner = Runner(profile, backend, args.seed, pool, expectations=args.expect)
            meta = {"profile": profile.name, "kernel_release": platform.release(),
                    "backend": backend.value, "profile_note": note, "hash_problem": "",
                    "expectations": _spec_label(runner)}
            print(f"expectations: {_spec_label(runner)}" + (f" ({runner.spec_note})" if runner.spec_note else ""))
            batches = _batches(scenarios, args.repeat, by_feature=writer is not None)
            if writer is not None:
                features = Counter(sc.feature for sc in scenarios)  # first-appearance order
                writer.plan([(f, n * args.repeat) for f, n in features.items()],
                            {str(sc.path): args.repeat for sc in scenarios},
                            [f"sockharness run: profile {profile.name}; kernel {platform.release()}; "
                             f"backend {backend.value}; expectations {_spec_label(runner)}"])
                feed = _ktap_feed(writer, results)
            done = 0
            for label, batch in batches:
                if label:
                    print(label, flush=True)
                runner.run(batch, _progress(args.quiet, done, total, feed), results)
                done += len(batch)
            show = _minimize_progress(args.quiet)
            divergent = [r for r in results if r.divergent and not r.skipped]
            for r in divergent if args.minimize else ():
                r.reduction = minimize(r, runner.run_one, args.minimize_budget, progress=show)
            texts = [divergence_text(r, r.reduction) for r in divergent]
        finally:
            if pool:
                pool.close()
    except BaseException as e:
        if feed is not None:  # a scenario the worker failed on is in results, not yet written
            feed()
        if meta is not None:  # the reports of what ran, marked incomplete
            meta.update(hash_problem=runner.hash_problem, seconds=round(time.monotonic() - t0, 3))
            _write_incomplete(outputs, results, meta, e, total)
        raise
    for text in texts:
        print()
        print(text)
    if pool is not None and pool.hashes6_problem:
        print(f"\nIPv6 reuseport picks were checked by property only: {pool.hashes6_problem}")
    if runner.hash_problem:
        print(f"\nDIVERGED {runner.hash_problem} (profile {profile.name}); reuseport picks by hash "
              "were checked by property only")
    summary = Summary.of(results)
    print()
    print(summary_table(summary))
    meta.update(hash_problem=runner.hash_problem, complete=True,
                seconds=round(time.monotonic() - t0, 3))
    with deferred():  # a signal now waits until the reports are whole
        _write_reports(outputs, results, meta)
    t = summary.total
    print("\n" + steps_line(t))
    if lookups_line(t):
        print(lookups_line(t))
    if pool is not None and pool.replaced:
        print(f"{pool.replaced} namespace(s) replaced: not clean after a scenario's reset")
    if writer is not None:
        with deferred():
            writer.close(notes=[f"DIVERGED {runner.hash_problem}"] if runner.hash_problem else ())
    if t.errors:
        print(f"error: {t.errors} scenario(s) could not run (the harness failed, not the kernel)",
              file=sys.stderr)
        return EXIT_USAGE
    if backend.uses_kernel and t.kernel_steps == 0:
        print("error: no step ran on the kernel", file=sys.stderr)
        return EXIT_DIVERGED
    if t.steps and not t.steps_checked:
        print("error: no step was checked (nothing to compare them with)", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_DIVERGED if t.diverged or runner.hash_problem else EXIT_OK


def _spec_label(runner: Runner) -> str:
    """Which expectations a run checks: a kernel version's (its clauses, else the default)."""
    if runner.spec is None:
        return "none (model against kernel only)"
    return f"{version_text(runner.spec)}'s (its version clauses, else the default)"


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a count >= 1, got {text!r}")
    return int(text)


def _origin(text: str) -> str:
    from harness.kcidb import ORIGIN_PATTERN

    if not ORIGIN_PATTERN.fullmatch(text):
        raise argparse.ArgumentTypeError(f"a KCIDB origin is [a-z0-9_]+, not {text!r}")
    return text


def cmd_record(args: argparse.Namespace) -> int:
    """The kernel's outcomes as expectations: of the running kernel (run here, both backends),
    or of the runs in `--from` reports; a step where the model disagrees is not recorded."""
    if args.reports:
        runs = [record.from_json(r) for r in _reports(args.reports)]
        only = {p.resolve() for p in collect(args.files)} if args.files else None
        return max([record.write(run, only, print) for run in runs], default=EXIT_OK)
    if not args.files:
        raise UsageError("record takes scenario files or folders, or --from REPORT")
    profile, note = _profile(args.profile)
    if note or profile.version not in KNOWN_VERSIONS:
        raise UsageError(f"{note or f'profile {profile.name}'}: expectations are recorded per "
                         "kernel version with a profile of its own (see `sockharness profiles`)")
    scenarios = load(args.files)
    run = record.KernelRun(profile.version, platform.release())
    with _pool() as pool:
        runner = Runner(profile, Backend.BOTH, 0, pool)
        for sc in scenarios:
            record.add_result(run, runner.run_one(sc))
    return record.write(run, None, print)


def _reports(paths: list[str]) -> list[Path]:
    """Report files as given; a folder (a `kernels --out`) gives its */corpus.json."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            inner = sorted(p.glob("*/corpus.json"))
            if not inner:
                raise UsageError(f"{p}: no */corpus.json in it (a `sockharness kernels --out` folder)")
            found += inner
        elif p.exists():
            found.append(p)
        else:
            raise UsageError(f"{p}: no such report")
    return found


def cmd_explain(args: argparse.Namespace) -> int:
    profile, note = _profile(args.profile)
    if note:
        print(f"note: {note}")
    spec, spec_note = spec_for(profile)
    for sc in load([args.file]):
        print(visible(f"{sc.path} (profile {profile.name})"))
        if spec_note:
            print(f"  note: {spec_note}")
        for key, value in sc.sysctls:
            print(visible(f"  @sysctl {key} = {value}"))
        outcomes = ModelExecutor(profile, args.seed).run(sc)
        differ = 0
        for step, o in zip(sc.steps, outcomes, strict=True):
            extra = " (a random pick; the kernel may pick another)" if o.random else ""
            expect, source = step.expected(spec) if spec is not None else (None, "")
            if expect is not None and expect != o.value:
                on = "" if source == "default" else f" on {source}"
                if o.random:
                    extra += f"   [the file states {expect}{on}; a random pick, not compared]"
                else:
                    extra += f"   [DIFFERS: the file states {expect}{on}]"
                    differ += 1
            print(visible(f"  {step.line:>4}  {step.call} = {o.value}{extra}"))
            print(visible(f"        {o.reason}"))
        if differ:
            print(f"  {differ} step(s) where the model's value DIFFERS from the file's (marked)")
    return EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    """Infer the running kernel's profile from the probe scenarios' outcomes on it."""
    from harness import probe

    if os.geteuid() != 0:
        raise UsageError("profiles --probe runs scenarios on this kernel: it needs root")
    release = platform.release()
    version = parse_release(release)
    withheld = []
    if args.withhold:
        own, note = profile_for_release(release)
        if note:
            raise UsageError(f"--withhold: {note}; there is no profile of its own to withhold")
        withheld = [own]
        print(f"withholding profile {own.name} and every profile with its rules")
    inf, plan, why = probe.probe_running(version, withheld, print)
    if inf is None:
        print(f"hash formula: {why}")
        return EXIT_DIVERGED
    for line in probe.report_lines(inf, plan):
        print(line)
    status = EXIT_OK if inf.fits else EXIT_DIVERGED
    if withheld:
        wrong = [v.name for v in inf.verdicts if probe.get(withheld[0], v.name) != v.value]
        if inf.profile.ehash_lport_outside != withheld[0].ehash_lport_outside:
            wrong.append("ehash_lport_outside")
        print(f"recovered {withheld[0].name}: " + ("every field" if not wrong else
                                                    f"NOT {', '.join(wrong)}"))
        status = status or (EXIT_DIVERGED if wrong else EXIT_OK)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "kernel_release": release, **probe.to_json(inf, plan), "withheld": [w.name for w in withheld],
            "observations": probe.observations_json(inf.observations)}, indent=1) + "\n")
    if not withheld and inf.fits:
        probe.save_inferred(release, inf, plan)
    return status


def cmd_profiles(args: argparse.Namespace) -> int:
    """Each profile, as its differences from the running kernel's."""
    if args.probe:
        return cmd_probe(args)
    running, note = running_profile()
    base = _fields(running)
    if note:
        print(f"note: {note}")
    print(f"{running.name} (running kernel): " + ", ".join(f"{k}={v}" for k, v in base.items()))
    for p in PROFILES.values():
        if p is running:
            continue
        diff = {k: v for k, v in _fields(p).items() if base.get(k) != v}
        origin = " (from source, not booted)" if p.name in UNBOOTED else ""
        print(f"{p.name}{origin}: differs in " + (", ".join(f"{k}={v}" for k, v in diff.items()) or "nothing"))
    for old in HISTORICAL.values():
        print(f"{old.name} (historical, unit tests only; model/legacy39.py): "
              + ", ".join(f"{k}={v}" for k, v in _fields(old).items() if k != "version"))
    return EXIT_OK


def _fields(p: Profile) -> dict[str, object]:
    """A profile's fields, the bind rules flattened as bind.<field>."""
    out: dict[str, object] = {}
    for f in dataclasses.fields(p):
        value = getattr(p, f.name)
        if dataclasses.is_dataclass(value):
            out.update({f"{f.name}.{g.name}": getattr(value, g.name) for g in dataclasses.fields(value)})
        elif isinstance(value, frozenset):
            out[f.name] = "{" + ", ".join(sorted(value)) + "}"
        elif f.name not in ("name",):
            out[f.name] = value
    return out


def _version() -> str:
    try:
        return importlib.metadata.version("sockharness")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="sockharness",
        description="Run TCP bind/listen scenarios on the reference model and the real kernel.",
    )
    ap.add_argument("--version", action="version", version=f"sockharness {_version()}")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run scenario files or folders; exit 0 agree, 1 divergence, 2 error")
    run.add_argument("paths", nargs="+", metavar="PATH")
    run.add_argument("--backend", choices=[b.value for b in Backend], default="both")
    run.add_argument("--profile", help="model profile (default: the running kernel's)")
    run.add_argument("--json", metavar="FILE", help="write every step's outcomes as JSON")
    run.add_argument("--set", action="append", metavar="FIELD=VALUE",
                     help="override one profile field, e.g. --set connect_bind_reset=false or "
                     "--set bind.bhash2=false (repeatable)")
    run.add_argument("--no-expect", dest="expect", action="store_false",
                     help="ignore the files' '= …' expectations: model against kernel only (for a "
                     "kernel other than the one they were recorded on)")
    run.add_argument("--junit", metavar="FILE", help="write JUnit XML (a scenario per testcase)")
    run.add_argument("--html", metavar="FILE", help="write one self-contained HTML page: the "
                     "summary per feature, each divergence, the reuseport spread charts")
    run.add_argument("--ktap", action="store_true",
                     help="KTAP version 1 on stdout as the run goes (a result per scenario, nested "
                     "by feature, kselftest's Totals line); all else goes to stderr")
    run.add_argument("--seed", type=int, default=0, help="seed of the model's own random picks")
    run.add_argument("--no-minimize", dest="minimize", action="store_false",
                     help="print the scenario cut at the divergence instead of shrinking it")
    run.add_argument("--minimize-budget", type=_positive, default=MAX_CANDIDATES, metavar="N",
                     help="candidate scenarios a minimization may try, each rerun on the backends "
                     "(default: %(default)s); past it the reproducer is 'reduced', not minimal")
    run.add_argument("-q", "--quiet", action="store_true", help="print only divergent scenarios (and a progress line every 50)")
    run.add_argument("--repeat", type=_positive, default=1, metavar="N",
                     help="run everything N times (a flakiness check); the summary counts all runs")
    run.set_defaults(func=cmd_run)
    rec = sub.add_parser("record", help="write a kernel's outcomes into files as its expectations "
                         "('= …' on 6.18, a version clause '[5.10: …]' on others)")
    rec.add_argument("files", nargs="*", metavar="FILE",
                     help="scenario files or folders (with --from: only these)")
    rec.add_argument("--from", dest="reports", action="append", metavar="REPORT",
                     help="record a finished run instead of running: a `run --json` report or a "
                     "`kernels --out` folder (each kernel's corpus.json); repeatable")
    rec.add_argument("--profile")
    rec.set_defaults(func=cmd_record)
    exp = sub.add_parser("explain", help="the model's outcome and reason for every step (no root)")
    exp.add_argument("file", metavar="FILE")
    exp.add_argument("--profile")
    exp.add_argument("--seed", type=int, default=0)
    exp.set_defaults(func=cmd_explain)
    ker = sub.add_parser("kernels", help="boot Debian's 5.10, 6.1, 6.12, 7.2 kernels under QEMU and "
                         "run the corpus in each; the scenario x kernel matrix")
    ker.add_argument("--versions", nargs="+", metavar="V", help="kernels to boot (default: all)")
    ker.add_argument("--kernel", metavar="PATH",
                     help="boot this kernel instead of Debian's: a bzImage/vmlinuz, or a kernel "
                     "build tree (arch/x86/boot/bzImage and its built modules); exit 0 agree, 1 "
                     "diverge, 125 could not boot or run (for `git bisect run`)")
    ker.add_argument("--modules", metavar="DIR",
                     help="with --kernel PATH to an image: its modules tree (lib/modules/<release>)")
    ker.add_argument("--out", default="reports/kernels", help="results folder (default: %(default)s)")
    ker.add_argument("--jobs", type=_positive, help="guests at once (default: one per core)")
    ker.add_argument("--cpus", type=_positive, help="CPUs per guest (default: cores / jobs)")
    ker.add_argument("--kernel-tests", nargs="*", metavar="PATH",
                     help="pytest paths run in each guest (default: the per-kernel tests; the option with no PATH: none)")
    ker.add_argument("--no-host", dest="host", action="store_false",
                     help="leave out the host kernel's column")
    ker.add_argument("--scenarios", nargs="+", metavar="PATH", default=["tests/scenarios"],
                     help="the scenario files or folders each kernel runs, inside this project "
                     "(the guests read it; default: %(default)s)")
    ker.add_argument("--no-probe", dest="probe", action="store_false",
                     help="skip inferring each guest's profile with its own withheld")
    ker.add_argument("--soak", type=_positive, default=0, metavar="N",
                     help="in each guest, after the tests, N injected SYNs on model and kernel (make soak)")
    ker.add_argument("--timeout", type=float, default=1500, help="seconds per guest (default: %(default)s)")
    ker.add_argument("--ktap", action="store_true",
                     help="the matrix as KTAP version 1 on stdout (a test per kernel, its corpus "
                     "nested); all else goes to stderr")
    ker.add_argument("--kcidb", metavar="FILE",
                     help="the matrix as KCIDB v5 JSON (a checkout and build per kernel, a test per "
                     "scenario run), for kcidb-submit")
    ker.add_argument("--kcidb-origin", default="sockharness", type=_origin, metavar="NAME",
                     help="the KCIDB origin (your CI system's, [a-z0-9_]+; default: %(default)s)")
    ker.set_defaults(func=cmd_kernels)
    prof = sub.add_parser("profiles", help="list the model's kernel profiles; --probe infers the "
                          "running kernel's")
    prof.add_argument("--probe", action="store_true",
                      help="run the scenarios that decide each profile field on this kernel (root) "
                      "and print the profile that fits, field by field")
    prof.add_argument("--withhold", action="store_true",
                      help="with --probe: never start from the kernel's own profile (or one with "
                      "its rules), to show the probe recovers it")
    prof.add_argument("--json", metavar="FILE", help="with --probe: the inferred profile as JSON")
    prof.set_defaults(func=cmd_profiles)
    return ap


def cmd_kernels(args: argparse.Namespace) -> int:
    from harness.guests import command, fetch, qemu

    if os.geteuid() != 0:
        raise UsageError("kernels needs root (QEMU's virtiofsd shares the host root read-only)")
    # KTAP alone on stdout then: all else goes to stderr; a bad KCIDB path fails before a boot
    outputs = command.Outputs(ktap=sys.stdout if args.ktap else None, kcidb=_output("--kcidb", args.kcidb),
                              kcidb_origin=args.kcidb_origin)
    try:
        with contextlib.redirect_stdout(sys.stderr) if args.ktap else contextlib.nullcontext():
            return command.main(args, outputs)
    except (fetch.FetchError, FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from e
    finally:
        qemu.stop_all()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    gc.set_threshold(200_000, 50, 100)  # runs of many small objects (a model step's): collect rarely

    def body() -> int:
        try:
            return args.func(args)
        except (ScenarioError, UsageError, EnvironmentProblem) as e:
            print(visible(f"sockharness: {e}"), file=sys.stderr)
            return EXIT_USAGE
        except BrokenPipeError:
            os._exit(EXIT_USAGE)

    return run_interruptible("sockharness", body)


if __name__ == "__main__":
    sys.exit(main())
