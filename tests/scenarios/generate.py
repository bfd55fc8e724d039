"""Writes generated scenario folders from their tables: each generator module here defines OUT
and cases() -> [(name, text)]. Expectations are then recorded from the kernel with
`sockharness record` (see docs/scenarios.md).

Run: python tests/scenarios/generate.py [--rewrite] [GENERATOR...]   (all of them by default)

A file that exists is kept: its recorded expectations stand (writing it anew would drop them).
--rewrite writes every file, for a generator whose steps changed (then record again).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent
GENERATORS = ("bind6_matrix", "devices", "rawaddr", "connect_matrix", "timewait", "bhash2", "queues", "migration",
              "replies", "ebpf", "udp_bind", "udp_lookup")


def load(name: str) -> ModuleType:
    """A generator module by name, loaded from this folder."""
    spec = importlib.util.spec_from_file_location(f"scenario_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def write(name: str, rewrite: bool = False) -> tuple[int, int]:
    """Write one generator's new files (expectations are recorded afterwards), or with
    `rewrite` every file; (written, kept)."""
    mod = load(name)
    mod.OUT.mkdir(exist_ok=True)
    written = kept = 0
    for case, text in mod.cases():
        path = mod.OUT / f"{case}.scn"
        if path.exists() and not rewrite:
            kept += 1
            continue
        path.write_text(text)
        written += 1
    return written, kept


def main(argv: list[str]) -> int:
    rewrite = "--rewrite" in argv
    names = [a for a in argv if a != "--rewrite"]
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        print(f"unknown generator(s) {', '.join(unknown)}; known: {', '.join(GENERATORS)}", file=sys.stderr)
        return 2
    for name in names or GENERATORS:
        written, kept = write(name, rewrite)
        print(f"{name}: {written} files written, {kept} kept (recorded; --rewrite to regenerate)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
