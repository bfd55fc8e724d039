"""Writes generated scenario folders from their tables: each generator module here defines OUT
and cases() -> [(name, text)]. Expectations are then recorded from the kernel with
`sockharness record` (see docs/scenarios.md).

Run: python tests/scenarios/generate.py [GENERATOR...]   (all of them by default)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).parent
GENERATORS = ("bind6_matrix", "devices", "rawaddr", "connect_matrix", "timewait", "bhash2", "queues", "migration",
              "replies")


def load(name: str) -> ModuleType:
    """A generator module by name, loaded from this folder."""
    spec = importlib.util.spec_from_file_location(f"scenario_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def write(name: str) -> int:
    """Write one generator's files (expectations are recorded afterwards); how many."""
    mod = load(name)
    mod.OUT.mkdir(exist_ok=True)
    cases = mod.cases()
    for case, text in cases:
        (mod.OUT / f"{case}.scn").write_text(text)
    return len(cases)


def main(argv: list[str]) -> int:
    unknown = [n for n in argv if n not in GENERATORS]
    if unknown:
        print(f"unknown generator(s) {', '.join(unknown)}; known: {', '.join(GENERATORS)}", file=sys.stderr)
        return 2
    for name in argv or GENERATORS:
        print(f"{name}: {write(name)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
