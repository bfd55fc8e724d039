"""The guest's first userspace: busybox, the modules the cloud kernels lack built in, an /init.

The cloud kernels build virtio_pci, fuse and virtiofs as modules before 6.12 (docs/design.md, Several kernels), and
tun and inet_diag everywhere; the host has no modprobe to serve the kernel's request_module, so
/init loads each module and its dependencies, in order, before the root is mounted.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import stat
from dataclasses import dataclass
from pathlib import Path

# What the guest needs: the virtio-PCI transport and virtiofs for the root, TUN for injection,
# inet_diag/tcp_diag for sock_diag (request sockets, queues, SOCK_DESTROY).
WANTED = ("virtio_pci", "fuse", "virtiofs", "tun", "inet_diag", "tcp_diag")
_SUFFIXES = (".ko", ".ko.xz", ".ko.zst")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    depends: tuple[str, ...]

    def data(self) -> bytes:
        """The module's ELF bytes (busybox insmod takes uncompressed files only)."""
        raw = self.path.read_bytes()
        if self.path.name.endswith(".xz"):
            return lzma.decompress(raw)
        if self.path.name.endswith(".zst"):
            raise ValueError(f"{self.path}: zstd modules are not supported")
        return raw


def _modinfo(data: bytes) -> dict[str, str]:
    """The key=value strings of a module's .modinfo section (found by scanning: they are
    NUL-separated ASCII, and 'depends=' and 'name=' occur once each)."""
    info: dict[str, str] = {}
    for key in (b"depends=", b"name="):
        at = data.find(b"\0" + key)
        if at >= 0:
            end = data.index(b"\0", at + 1)
            info[key[:-1].decode()] = data[at + 1 + len(key):end].decode()
    return info


def index_modules(moddir: Path) -> dict[str, Path]:
    """Module name (dashes as underscores) -> file, over a kernel's modules tree or a kernel
    build tree (its built *.ko; dot folders such as .git are not searched)."""
    found: dict[str, Path] = {}
    for folder, subdirs, names in os.walk(moddir):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in names:
            for suffix in _SUFFIXES:
                if name.endswith(suffix) and not name.startswith("."):
                    found.setdefault(name[: -len(suffix)].replace("-", "_"), Path(folder) / name)
    return found


def builtin(moddir: Path) -> set[str]:
    """Modules built into the kernel image (modules.builtin, at the top of a modules tree or
    of a build tree)."""
    listing = moddir / "modules.builtin"
    if not listing.exists():
        return set()
    return {Path(line).name.split(".ko")[0].replace("-", "_")
            for line in listing.read_text().split() if line}


def plan(moddir: Path | None, wanted: tuple[str, ...] = WANTED) -> tuple[list[Module], list[str]]:
    """The modules to insmod, dependencies first, built-in ones left out; and the wanted
    modules (or their dependencies) neither found under `moddir` nor listed built in. No
    `moddir` (a bare kernel image): every wanted module is then one the kernel must have
    built in, and is returned as not found."""
    files = index_modules(moddir) if moddir else {}
    inside = builtin(moddir) if moddir else set()
    order: list[Module] = []
    seen: set[str] = set()
    missing: list[str] = []

    def visit(name: str) -> None:
        name = name.replace("-", "_")
        if name in seen or name in inside:
            return
        seen.add(name)
        if name not in files:
            missing.append(name)
            return
        path = files[name]
        mod = Module(name, path, ())
        deps = tuple(d for d in _modinfo(mod.data()).get("depends", "").split(",") if d)
        for dep in deps:
            visit(dep)
        order.append(Module(name, path, deps))

    for name in wanted:
        visit(name)
    return order, missing


def load_order(moddir: Path, wanted: tuple[str, ...] = WANTED) -> list[Module]:
    """The modules to insmod, dependencies first; built-in ones are left out; a module
    neither found nor built in is an error."""
    order, missing = plan(moddir, wanted)
    if missing:
        raise FileNotFoundError(f"module {', '.join(missing)} is neither built in nor under {moddir}")
    return order


class Cpio:
    """A gzip'd newc cpio archive, the format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        header = "070701" + "".join(f"{v:08x}" for v in (
            self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0))
        self._ino += 1
        self._buf.write(header.encode() + name.encode() + b"\0")
        self._pad()
        self._buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self._buf.write(b"\0" * (-self._buf.tell() % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def bytes(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return gzip.compress(self._buf.getvalue(), compresslevel=1)


def build(busybox: Path, modules: list[Module], init: str) -> bytes:
    """An initramfs holding busybox as /bin/busybox, the modules under /modules (named
    NN-name.ko in load order) and `init` as /init."""
    archive = Cpio()
    for d in ("bin", "dev", "proc", "sys", "modules", "newroot", "host", "rw"):
        archive.directory(d)
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    for i, mod in enumerate(modules):
        archive.file(f"modules/{i:02d}-{mod.name}.ko", mod.data())
    archive.file("init", init.encode(), 0o755)
    return archive.bytes()
