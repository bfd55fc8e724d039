"""What runs inside a booted kernel: the corpus and the kernel tests, results to a shared folder.

Invoked by the host as `python -m harness.guests.guest OUT` in the guest's chroot of the host
root (read-only but for OUT). Prints one progress line per phase for the host to relay.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

PROGRESS = "SOCKH-PROGRESS "
# OUT/swap.txt, written by the host while the guest runs its corpus: "set FIELD=VALUE" lines
# (the fields where this kernel's profile differs from the reference) and "path P" lines (the
# scenarios those fields decide), rerun under the kernel's profile with those settings.
SWAP_WAIT = 600.0  # seconds to wait for it after the corpus
# `sockharness run -q` prints "[i/n] …" every 50 scenarios and a line per divergence
_PROGRESS_LINE = re.compile(r"^\[\d+/\d+\]")


def _phase(name: str, argv: list[str], out: Path) -> dict:
    """Run one phase, its output to OUT/NAME.log; relay its progress lines to the console."""
    print(f"{PROGRESS}{name} started", flush=True)
    start = time.monotonic()
    with open(out / f"{name}.log", "w") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if _PROGRESS_LINE.match(line):
                print(f"{PROGRESS}{name} {line.strip()[:160]}", flush=True)
        code = proc.wait()
    took = time.monotonic() - start
    tail = (out / f"{name}.log").read_text(errors="replace").strip().splitlines()[-1:] or [""]
    print(f"{PROGRESS}{name} exit {code} in {took:.0f} s: {tail[0][:160]}", flush=True)
    return {"exit": code, "seconds": round(took, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.guests.guest")
    ap.add_argument("out", type=Path)
    ap.add_argument("--profile", help="model profile (default: the running kernel's)")
    ap.add_argument("--corpus", nargs="+", default=["tests/scenarios"])
    ap.add_argument("--no-probe", dest="probe", action="store_false",
                    help="skip inferring this kernel's profile with its own withheld (profiles --probe)")
    ap.add_argument("--kernel-tests", nargs="*", default=["tests/kernel"],
                    help="pytest paths run inside the guest (none: skip the phase)")
    ap.add_argument("--soak", type=int, default=0, metavar="N",
                    help="then N injected SYNs on model and kernel (python -m harness.soak)")
    args = ap.parse_args(argv)
    # every phase's tests know they run under emulation (tests/conftest.py: native_speed skips)
    os.environ["SOCKH_GUEST"] = "1"
    args.out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    meta: dict = {"kernel_release": platform.release(), "phases": {}}
    profile = ["--profile", args.profile] if args.profile else []
    # expectations on: the kernel's own version clauses, else the default (harness/spec.py)
    meta["phases"]["corpus"] = _phase(
        "corpus", [py, "-m", "harness", "run", *args.corpus, "-q", "--no-minimize", *profile,
                   "--json", str(args.out / "corpus.json"), "--junit", str(args.out / "corpus.xml")],
        args.out)
    swap = args.out / "swap.txt"
    deadline = time.monotonic() + SWAP_WAIT
    while not swap.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    lines = swap.read_text().splitlines() if swap.exists() else []
    settings = [w for ln in lines if ln.startswith("set ") for w in ("--set", ln[4:])]
    paths = [ln[5:] for ln in lines if ln.startswith("path ")]
    if paths:  # expected to diverge: not part of the exit status
        meta["swap"] = _phase(
            "swap", [py, "-m", "harness", "run", *paths, "-q", "--no-minimize", "--no-expect",
                     *profile, *settings, "--json", str(args.out / "swap.json")],
            args.out)
    if args.probe:  # the profile inferred with this kernel's own withheld: it must be recovered
        meta["phases"]["probe"] = _phase(
            "probe", [py, "-m", "harness", "profiles", "--probe", "--withhold",
                      "--json", str(args.out / "probe.json")], args.out)
    if args.kernel_tests:
        meta["phases"]["kernel-tests"] = _phase(
            "kernel-tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                             *args.kernel_tests, "--junitxml", str(args.out / "kernel-tests.xml")],
            args.out)
    if args.soak:
        meta["phases"]["soak"] = _phase(
            "soak", [py, "-m", "harness.soak", "--syns", str(args.soak), "--no-minimize",
                     "--out", str(args.out / "soak")],
            args.out)
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    return max(p["exit"] for p in meta["phases"].values())


if __name__ == "__main__":
    sys.exit(main())
