"""Malformed scenario files, made from the corpus by grammar-aware mutations, run through the
parser and the model in this process (`make mutate`): every file must end as a parse error or a
model run, never a traceback, a hang or a memory blow-up.

A mutation keeps most of a real file and breaks one thing the parser must notice (a deleted or
swapped token, a huge or non-ASCII number, binary bytes, a long line, an unknown verb, a socket
used after its close(), a cut file, lines spliced from another file). The files are generated
from a seed, so a failure is rerun with the same `--seed` and `--count`; each failing file is
kept under reports/mutate/ with its traceback.
"""

from __future__ import annotations

import argparse
import faulthandler
import random
import re
import resource
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from harness.compare import compare
from harness.model_backend import ModelExecutor
from harness.parser import MESSAGE_MAX, VERBS, ScenarioError, parse_file
from harness.report import divergence_text
from harness.signals import run_interruptible
from harness.spec import RECORDED, spec_for

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "scenarios"
HANG_SECONDS = 10  # a file parsed and modelled in longer than this is a hang
MEMORY_LIMIT = 1 << 30  # bytes of address space a file may add to the process

_TOKEN = re.compile(r"\[[0-9a-fA-F:.]*\](?::\d+)?|[A-Za-z_][\w.]*|\d+(?:\.\d+){0,3}(?::\d+)?|\S")
_NUMBER = re.compile(r"\d+")
_NAME = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*(?:socket|accept)\s*\(")

HUGE = ("9" * 4301, "1" + "0" * 100_000, str(1 << 32), str((1 << 32) - 1), str(1 << 64), str(1 << 31),
        "-1", "-2147483649", "0" * 40 + "1", "65536", "99999999999", "1e9", "0x10", "+5", "1_000")
UNICODE_DIGITS = ("²", "１", "𝟗", "٣", "Ⅸ", "໒", "߂", "¹", "⁰", "₃")
JUNK = (b"\x00", b"\xff\xfe", b"\xc3\x28", b"\r", b"\x0b", b"\x1c", b"\x85", b"\xe2\x80\xa8",
        b"\xef\xbb\xbf", b"\x1b[31m", b"\t", b"\\", b"#", b"=", b"(", b")", b"[", b"]", b",")
ADDRESSES = ("300.1.1.1:80", "10.0.0.1:65536", "10.0.0.1:-1", "[::1", "[:::]:80", "[fe80::1%9]:80",
             "10.0.0.1", ":8080", "[::ffff:999.0.0.1]:1", "10.0.0.1:08080", "0:0", "[]:0")
CLAUSES = (" [5.9: 0]", " [5.10: ", " [6.1-5.10: *]", " [6.18: 0]", " [5.10: 0] [5.10: 0]", " [: 0]",
           " [5.10, : 0]", " [99999.1: 0]", " [5.10: " + "x" * 500 + "]", " [7.2: *] [6.12: *]")


def _lines(text: str) -> list[str]:
    return text.split("\n")


@dataclass
class Mutator:
    """Applies random mutations (by name, for the failure report) to corpus texts."""

    rng: random.Random
    corpus: list[str]
    applied: list[str] = field(default_factory=list)

    def ops(self) -> list[Callable[[str], str | bytes]]:
        return [self.delete_line, self.duplicate_line, self.swap_lines, self.delete_token,
                self.swap_tokens, self.huge_number, self.unicode_number, self.binary_bytes,
                self.long_line, self.unknown_verb, self.other_verb, self.use_after_close,
                self.truncate, self.errno_name, self.address, self.clause, self.shuffle,
                self.splice, self.sysctl_value, self.nesting]

    def structural(self) -> list[Callable[[str], str | bytes]]:
        """Mutations that mostly leave a file the parser takes: they test the model."""
        return [self.delete_line, self.duplicate_line, self.swap_lines, self.use_after_close,
                self.splice, self.address, self.errno_name]

    def mutate(self, text: str) -> bytes:
        """1-4 mutations of one text (a third of files: structural ones only); binary
        mutations make bytes, which end the chain."""
        out: str | bytes = text
        ops = self.structural() if self.rng.random() < 1 / 3 else self.ops()
        for _ in range(self.rng.randint(1, 4)):
            if isinstance(out, bytes):
                break
            op = self.rng.choice(ops)
            self.applied.append(op.__name__)
            out = op(out)
        return out if isinstance(out, bytes) else out.encode()

    # ---- helpers

    def _line_index(self, lines: list[str]) -> int:
        steps = [i for i, s in enumerate(lines) if s.strip() and not s.lstrip().startswith("#")]
        return self.rng.choice(steps) if steps else self.rng.randrange(len(lines))

    def _edit_token(self, text: str, pattern: re.Pattern, new: Callable[[str], str]) -> str:
        lines = _lines(text)
        i = self._line_index(lines)
        found = list(pattern.finditer(lines[i]))
        if not found:
            return text
        m = self.rng.choice(found)
        lines[i] = lines[i][:m.start()] + new(m.group()) + lines[i][m.end():]
        return "\n".join(lines)

    # ---- the mutations

    def delete_line(self, text: str) -> str:
        lines = _lines(text)
        del lines[self._line_index(lines)]
        return "\n".join(lines)

    def duplicate_line(self, text: str) -> str:
        lines = _lines(text)
        i = self._line_index(lines)
        lines.insert(self.rng.randrange(len(lines) + 1), lines[i])
        return "\n".join(lines)

    def swap_lines(self, text: str) -> str:
        lines = _lines(text)
        i, j = self._line_index(lines), self._line_index(lines)
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)

    def delete_token(self, text: str) -> str:
        return self._edit_token(text, _TOKEN, lambda _: "")

    def swap_tokens(self, text: str) -> str:
        lines = _lines(text)
        i = self._line_index(lines)
        found = list(_TOKEN.finditer(lines[i]))
        if len(found) < 2:
            return text
        a, b = sorted(self.rng.sample(found, 2), key=lambda m: m.start())
        s = lines[i]
        lines[i] = s[:a.start()] + b.group() + s[a.end():b.start()] + a.group() + s[b.end():]
        return "\n".join(lines)

    def huge_number(self, text: str) -> str:
        return self._edit_token(text, _NUMBER, lambda _: self.rng.choice(HUGE))

    def unicode_number(self, text: str) -> str:
        def swap(digits: str) -> str:
            k = self.rng.randrange(len(digits))
            return digits[:k] + self.rng.choice(UNICODE_DIGITS) + digits[k + 1:]
        return self._edit_token(text, _NUMBER, swap)

    def binary_bytes(self, text: str) -> bytes:
        data = bytearray(text.encode())
        for _ in range(self.rng.randint(1, 3)):
            junk = self.rng.choice(JUNK) if self.rng.random() < 0.7 else self.rng.randbytes(self.rng.randint(1, 8))
            at = self.rng.randrange(len(data) + 1)
            data[at:at] = junk
        return bytes(data)

    def long_line(self, text: str) -> str:
        lines = _lines(text)
        i = self._line_index(lines)
        n = self.rng.choice((1000, 100_000, 1_000_000))
        filler = self.rng.choice(("a", "9", " ", "a, ", "(", "10.0.0.1:8080, ", "#"))
        k = self.rng.randrange(len(lines[i]) + 1)
        lines[i] = lines[i][:k] + filler * (n // len(filler)) + lines[i][k:]
        return "\n".join(lines)

    def unknown_verb(self, text: str) -> str:
        name = "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(self.rng.randint(1, 12)))
        return self._verb(text, name)

    def other_verb(self, text: str) -> str:
        return self._verb(text, self.rng.choice(VERBS))

    def _verb(self, text: str, verb: str) -> str:
        lines = _lines(text)
        i = self._line_index(lines)
        m = re.search(r"([A-Za-z_]\w*)\s*\(", lines[i])
        if m:
            lines[i] = lines[i][:m.start(1)] + verb + lines[i][m.end(1):]
        return "\n".join(lines)

    def use_after_close(self, text: str) -> str:
        """close() a socket at a random point after it is made, so later lines use it closed."""
        lines = _lines(text)
        made = [(i, m.group(1)) for i, s in enumerate(lines) if (m := _NAME.match(s))]
        if not made:
            return text
        i, name = self.rng.choice(made)
        at = self.rng.randint(i + 1, len(lines))
        lines.insert(at, f"close({name})" + self.rng.choice(("", " = 0", " = EBADF")))
        return "\n".join(lines)

    def truncate(self, text: str) -> str:
        return text[: self.rng.randrange(len(text) + 1)]

    def errno_name(self, text: str) -> str:
        pick = self.rng.choice(("EADDRINUSE", "EINVAL", "ENOENT", "EFOO", "0", "-1", "", "RST", "a", "*"))
        return self._edit_token(text, re.compile(r"(?<==\s)\S+"), lambda _: pick)

    def address(self, text: str) -> str:
        addr = re.compile(r"\[[0-9a-fA-F:.]*\]:\d+|\d+\.\d+\.\d+\.\d+:\d+")
        return self._edit_token(text, addr, lambda _: self.rng.choice(ADDRESSES))

    def clause(self, text: str) -> str:
        lines = _lines(text)
        i = self._line_index(lines)
        lines[i] = lines[i].split("#")[0].rstrip() + self.rng.choice(CLAUSES)
        return "\n".join(lines)

    def shuffle(self, text: str) -> str:
        lines = _lines(text)
        self.rng.shuffle(lines)
        return "\n".join(lines)

    def splice(self, text: str) -> str:
        """The head of this file and the tail of another: valid lines in an order none wrote."""
        other = _lines(self.rng.choice(self.corpus))
        lines = _lines(text)
        return "\n".join(lines[: self.rng.randint(0, len(lines))] + other[self.rng.randint(0, len(other)):])

    def sysctl_value(self, text: str) -> str:
        value = self.rng.choice(("-1", "9" * 30, ",,,", "1-1000000000", "40000,40003", "𝟗", "",
                                 "65535 0", "0 65535", "1 2 3", "x", "40000 40000", "1-20000000"))
        key = self.rng.choice(("net.core.somaxconn", "net.ipv4.ip_local_port_range",
                               "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_syncookies",
                               "net.ipv6.bindv6only", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.nope"))
        lines = _lines(text)
        lines.insert(self.rng.randrange(len(lines) + 1), f"@sysctl {key} = {value}")
        return "\n".join(lines)

    def nesting(self, text: str) -> str:
        lines = _lines(text)
        n = self.rng.choice((100, 10_000))
        lines.insert(self.rng.randrange(len(lines) + 1),
                     self.rng.choice(("bind(a, " + "(" * n, "x = " * n + "socket(AF_INET)", "[" * n,
                                      "syn(" + ">" * n + ")", "listen(a, " + "1, " * n + "1)")))
        return "\n".join(lines)


@dataclass
class Tally:
    files: int = 0
    refused: int = 0  # a ScenarioError: the expected end for most mutated files
    ran: int = 0  # parsed and modelled
    failures: list[str] = field(default_factory=list)


def corpus_texts(root: Path = CORPUS) -> list[str]:
    return [p.read_text() for p in sorted(root.rglob("*.scn"))]


def generate(seed: int, count: int, corpus: list[str]) -> Iterator[tuple[int, bytes, list[str]]]:
    """(index, file bytes, mutation names) for `count` files; file i depends on (seed, i) only."""
    for i in range(count):
        m = Mutator(random.Random(f"{seed}:{i}"), corpus)
        yield i, m.mutate(m.rng.choice(corpus)), m.applied


def check_one(path: Path, profile_index: int) -> bool:
    """Parse and model one file; True if it ran, False if the parser refused it. Anything else
    raises: that is the failure this tool looks for."""
    try:
        scenario = parse_file(path)
    except ScenarioError as e:
        text = str(e)
        if "\n" in text or len(e.message) > MESSAGE_MAX + 1:
            raise AssertionError(f"error message not one bounded line ({len(text)} chars)") from None
        return False
    profile = RECORDED[profile_index % len(RECORDED)]
    outcomes = ModelExecutor(profile).run(scenario)
    result = compare(scenario, outcomes, None, spec_for(profile)[0])
    if not result.agreed:
        divergence_text(result)
    return True


def _limit_memory() -> None:
    """Cap the address space at what the process uses now plus MEMORY_LIMIT: an input that
    needs more fails with MemoryError (a failure) instead of taking the machine."""
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (size + MEMORY_LIMIT, resource.RLIM_INFINITY))


def run(seed: int, count: int, out: Path, progress: bool = True) -> Tally:
    """Check `count` mutated files; failures are kept in `out` (a file and its traceback)."""
    out.mkdir(parents=True, exist_ok=True)
    current = out / "current.scn"  # the file being checked: left behind only by a hang
    corpus = corpus_texts()
    tally = Tally()
    try:
        for i, data, applied in generate(seed, count, corpus):
            current.write_bytes(data)
            faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)  # a hang: tracebacks, exit 1
            try:
                if check_one(current, i):
                    tally.ran += 1
                else:
                    tally.refused += 1
            except Exception:  # noqa: BLE001 - every exception but a parse error is the finding
                kept = out / f"fail-{seed}-{i}.scn"
                kept.write_bytes(data)
                (out / f"fail-{seed}-{i}.txt").write_text(
                    f"mutations: {', '.join(applied)}\n{traceback.format_exc()}")
                tally.failures.append(f"{kept}: {', '.join(applied)}: {traceback.format_exc(limit=-1).strip()}")
            finally:
                faulthandler.cancel_dump_traceback_later()
            tally.files += 1
            if progress and tally.files % 1000 == 0:
                print(f"mutate: {tally.files}/{count} files, {tally.refused} refused, {tally.ran} ran, "
                      f"{len(tally.failures)} failed", file=sys.stderr, flush=True)
    finally:  # also on Ctrl-C and SIGTERM (a hang exits from faulthandler: its file stays)
        current.unlink(missing_ok=True)
    return tally


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="sockharness-mutate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=20_000)
    ap.add_argument("--out", type=Path, default=Path("reports/mutate"))
    args = ap.parse_args(argv)
    print(f"mutate: {args.count} files from {len(corpus_texts())} corpus scenarios, seed {args.seed}; "
          f"a hang over {HANG_SECONDS} s prints tracebacks and leaves {args.out}/current.scn",
          file=sys.stderr, flush=True)
    _limit_memory()
    tally = run(args.seed, args.count, args.out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10
    for f in tally.failures:
        print(f"FAIL {f}")
    print(f"mutate: {tally.files} files: {tally.refused} refused with a parse error, {tally.ran} ran "
          f"on the model, {len(tally.failures)} failed; peak RSS {peak} MiB")
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(run_interruptible("sockharness-mutate", main))
