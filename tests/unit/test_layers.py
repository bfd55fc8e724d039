"""The fences between layers (docs/design.md, Layers), read from the source's import statements:
the model is pure, netns knows no socket semantics, the harness core does not reach into the
QEMU runner, and the scenario language, the model backend, `explain` and a model-only run do
not load the kernel side's pyroute2."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STDLIB = sys.stdlib_module_names


def imports(path: Path) -> list[tuple[int, str, bool]]:
    """(line, module, at module level) of every import in a file; relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    top = {id(n) for n in tree.body} | {id(n) for n in ast.walk(tree)
                                        if isinstance(n, ast.If | ast.Try) and n in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, mod]) if mod else ".".join(base)
            found.append((node.lineno, mod, id(node) in top))
    return found


def sources(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def offenders(folder: str, allowed, top_level_only: bool = False) -> list[str]:
    bad = []
    for f in sources(folder):
        for line, mod, top in imports(f):
            if top_level_only and not top:
                continue
            if not allowed(f, mod):
                bad.append(f"{f.relative_to(ROOT)}:{line}: imports {mod}")
    return bad


def test_the_model_imports_only_the_standard_library_and_itself():
    def pure(f: Path, mod: str) -> bool:
        root = mod.split(".")[0]
        return root == "model" or (root in STDLIB and root not in ("subprocess", "os", "time"))
    assert offenders("model", pure) == []


def test_netns_imports_no_harness_and_no_model():
    assert offenders("netns", lambda f, mod: mod.split(".")[0] not in ("harness", "model")) == []


def test_the_harness_core_does_not_import_the_qemu_runner():
    """Only the command line's `kernels` command (inside its function) reaches harness.guests."""
    def fenced(f: Path, mod: str) -> bool:
        return not mod.startswith("harness.guests") or f.parent.name == "guests"
    assert offenders("harness", fenced, top_level_only=True) == []
    lazy = [b for b in offenders("harness", fenced) if not b.startswith("harness/cli.py")]
    assert lazy == []


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("code", [
    "import harness.parser",
    "import harness.model_backend",
    "from harness.cli import main\nimport contextlib, io\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    main(['explain', 'tests/scenarios/reuseport/group-of-four.scn'])\n"
    "    main(['run', '--backend', 'model', '-q', 'tests/scenarios/reuseport'])",
], ids=["parser", "model_backend", "explain and a model-only run"])
def test_the_scenario_language_and_the_model_side_do_not_load_pyroute2(code):
    loaded = _loaded_after(code)
    assert not {m for m in loaded if m.split(".")[0] == "pyroute2"}


def test_the_fence_test_sees_every_kind_of_import(tmp_path, monkeypatch):
    """The checks above would see a violation however it is written."""
    pkg = tmp_path / "model"
    pkg.mkdir()
    (pkg / "bad.py").write_text("import harness.parser\nfrom netns import topology\n"
                                "from .sock import Sock\ndef f():\n    import pyroute2\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = [(line, mod, top) for line, mod, top in imports(pkg / "bad.py")]
    assert found == [(1, "harness.parser", True), (2, "netns", True), (3, "model.sock", True),
                     (5, "pyroute2", False)]
    assert len(offenders("model", lambda f, mod: mod.split(".")[0] == "model")) == 3


# model.kernel.Kernel's layers, lowest first: each may use only what it and those below define
KERNEL_LAYERS = ("state", "connections", "handshakes", "sockets")


def _defined(path: Path) -> tuple[set[str], set[str]]:
    """Names a layer's class defines (methods, fields, `self.x =` attributes) and the names
    its methods read from `self`."""
    tree = ast.parse(path.read_text())
    defined: set[str] = set()
    used: set[str] = set()
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")):
        for item in cls.body:
            if isinstance(item, ast.FunctionDef):
                defined.add(item.name)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                defined.add(item.target.id)
        for node in ast.walk(cls):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
                (defined if isinstance(node.ctx, ast.Store) else used).add(node.attr)
    return defined, used


def test_the_kernel_layers_call_only_downwards():
    below: set[str] = set()
    folder = ROOT / "model" / "kernel"
    for layer in KERNEL_LAYERS:
        defined, used = _defined(folder / f"{layer}.py")
        below |= defined
        upward = sorted(used - below)
        assert not upward, f"model/kernel/{layer}.py uses {upward}, defined only in a layer above it"


def test_the_kernel_layers_are_real_classes_not_stubs():
    from model.kernel.connections import Connections
    from model.kernel.datagrams import Datagrams
    from model.kernel.handshakes import Handshakes
    from model.kernel.sockets import Kernel
    from model.kernel.state import KernelState

    assert Kernel.__mro__[1:6] == (Datagrams, Handshakes, Connections, KernelState, object)
    tree = ast.parse((ROOT / "model" / "kernel" / "state.py").read_text())
    stubs = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
             and all(isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) for b in f.body)]
    assert not stubs, f"stub methods (a docstring or ... only) in state.py: {stubs}"
    assert not any(isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test) for n in ast.walk(tree))
