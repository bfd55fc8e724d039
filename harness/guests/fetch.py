"""Debian's cloud kernels (and the guest's busybox and virtiofsd) into a cache, never installed.

Each Debian suite gets a private apt root under the cache (its own sources.list, lists and
archives, an empty dpkg status), so the host's apt sources, its dpkg database and /boot are
never touched. Packages are unpacked with `dpkg -x`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.guests.qemu import Guest

MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"


@dataclass(frozen=True)
class Release:
    """One kernel to boot: Debian's cloud kernel of a suite, run under a model profile."""

    version: str  # "5.10": also the model profile's name
    suite: str
    security: bool = True

    def sources(self) -> str:
        lines = [f"deb {MIRROR} {self.suite} main"]
        if self.security:
            lines.append(f"deb {SECURITY} {self.suite}-security main")
        return "\n".join(lines) + "\n"


KERNELS = (Release("5.10", "bullseye"), Release("6.1", "bookworm"), Release("6.12", "trixie"),
           Release("7.2", "sid", security=False))
# The guest's userspace tools, from the host's own suite: busybox for /init, and QEMU 7.2's C
# virtiofsd (later QEMUs dropped it; trixie's Rust virtiofsd needs a newer glibc, docs/design.md, Several kernels).
TOOLS = Release("tools", "bookworm")
TOOL_PACKAGES = ("busybox-static", "qemu-system-common")
# Of the cloud meta package's dependencies, the ones that carry the kernel and its modules
# (sid splits linux-image into linux-binary, linux-modules and linux-base-<version>, which
# holds modules.builtin).
_KERNEL_PACKAGE = re.compile(r"^linux-(image|binary|modules|base)-\d")


class FetchError(RuntimeError):
    pass


class AptRoot:
    """apt-get/apt-cache confined to a folder: its own sources, lists, archives and status."""

    def __init__(self, folder: Path, release: Release) -> None:
        self.folder = folder
        (folder / "lists/partial").mkdir(parents=True, exist_ok=True)
        (folder / "cache/archives/partial").mkdir(parents=True, exist_ok=True)
        (folder / "sources.list").write_text(release.sources())
        self.options = [
            "-o", f"Dir::Etc::SourceList={folder / 'sources.list'}",
            "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={folder / 'lists'}",
            "-o", f"Dir::Cache={folder / 'cache'}",
            "-o", "Dir::State::Status=/dev/null",
            "-o", "APT::Architecture=amd64",
            "-o", "APT::Sandbox::User=root",
            "-o", "Debug::NoLocking=1",
        ]

    def _run(self, tool: str, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run([tool, "-q", *self.options, *args], cwd=cwd, capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise FetchError(f"{tool} {' '.join(args)} failed in {self.folder}:\n{proc.stderr.strip()}")
        return proc.stdout

    def update(self) -> None:
        self._run("apt-get", "update")

    def depends(self, package: str) -> list[str]:
        out = self._run("apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                        "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", package)
        return sorted({ln for ln in out.splitlines() if ln and not ln.startswith((" ", "<"))})

    def download(self, packages: list[str], into: Path) -> list[Path]:
        into.mkdir(parents=True, exist_ok=True)
        for old in into.glob("*.deb"):
            old.unlink()
        self._run("apt-get", "download", *packages, cwd=into)
        return sorted(into.glob("*.deb"))


def _unpack(debs: list[Path], root: Path) -> None:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for deb in debs:
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)


def _stamp(folder: Path) -> Path:
    return folder / "fetched"


def fetch_release(release: Release, cache: Path, say: Callable[[str], None] = print) -> Guest:
    """Download and unpack one kernel unless the cache has it; the bootable Guest."""
    folder = cache / release.suite
    if not _stamp(folder).exists():
        apt = AptRoot(folder / "apt", release)
        say(f"{release.version}: apt-get update ({release.suite})")
        apt.update()
        packages = [p for p in apt.depends("linux-image-cloud-amd64") if _KERNEL_PACKAGE.match(p)]
        if not packages:
            raise FetchError(f"{release.suite}: linux-image-cloud-amd64 names no kernel package")
        say(f"{release.version}: downloading {', '.join(packages)}")
        debs = apt.download(packages, folder / "debs")
        _unpack(debs, folder / "root")
        _stamp(folder).write_text("\n".join(d.name for d in debs) + "\n")
    return locate(folder / "root")


def locate(root: Path) -> Guest:
    """The kernel image and modules tree in an unpacked kernel (boot/ or usr/lib/modules/)."""
    for moddir in sorted([*root.glob("lib/modules/*"), *root.glob("usr/lib/modules/*")]):
        release = moddir.name
        for image in (root / "boot" / f"vmlinuz-{release}", moddir / "vmlinuz"):
            if image.exists():
                return Guest(release, image, moddir)
    raise FetchError(f"no kernel image and modules tree under {root}")


def bzimage_release(image: Path) -> str:
    """The release a bzImage names in its setup header: the kernel_version field (a u16 at
    0x20E) points, less 0x200, at the NUL-terminated version string ("6.12.1 (user@host) #1
    SMP …"); its first word. Documentation/arch/x86/boot.rst."""
    with open(image, "rb") as f:
        head = f.read(0x10000)
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        raise ValueError(f"{image}: not a bzImage (no HdrS setup header)")
    at = int.from_bytes(head[0x20E:0x210], "little") + 0x200
    end = head.find(b"\0", at)
    words = head[at:end].decode(errors="replace").split() if 0x200 < at < end else []
    if not words or not re.match(r"\d+\.\d+", words[0]):
        raise ValueError(f"{image}: no kernel version string in its setup header")
    return words[0]


def _modules_tree(folder: Path) -> Path:
    """A modules tree given as lib/modules/<release> itself, or as the root it was installed
    under (make modules_install INSTALL_MOD_PATH=…: lib/modules/<release> below it)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"--modules {folder}: no such folder")
    if any((folder / n).exists() for n in ("modules.order", "modules.builtin", "kernel")):
        return folder
    below = [*folder.glob("lib/modules/*"), *folder.glob("usr/lib/modules/*")]
    return below[0] if len(below) == 1 else folder


def own_kernel(path: Path, modules: Path | None = None) -> Guest:
    """A kernel given by path: a bzImage/vmlinuz (with its modules tree, if any), or a kernel
    build tree (arch/x86/boot/bzImage, its built *.ko and modules.builtin). Its release: the
    modules tree's name, else the build tree's include/config/kernel.release, else the
    bzImage's header. Wanted modules found nowhere do not stop the boot (missing_ok): the
    caller reports them."""
    path = path.resolve()
    named = path / "include/config/kernel.release"
    if path.is_dir():
        image = path / "arch/x86/boot/bzImage"
        if not image.exists():
            raise FileNotFoundError(f"{path}: a kernel build tree has arch/x86/boot/bzImage; "
                                    "this one has none (make bzImage modules)")
    elif path.is_file():
        image = path
    else:
        raise FileNotFoundError(f"--kernel {path}: no such file or folder")
    moddir = _modules_tree(modules.resolve()) if modules else path if path.is_dir() else None
    if modules and re.match(r"\d+\.\d+", moddir.name):
        release = moddir.name
    elif path.is_dir() and named.exists():
        release = named.read_text().strip()
    else:
        release = bzimage_release(image)
    return Guest(release, image, moddir, missing_ok=True)


def fetch_tools(cache: Path, say: Callable[[str], None] = print) -> Path:
    """busybox and virtiofsd unpacked under cache/tools/root (not installed)."""
    folder = cache / "tools"
    if not _stamp(folder).exists():
        apt = AptRoot(folder / "apt", TOOLS)
        say("tools: apt-get update (bookworm)")
        apt.update()
        say(f"tools: downloading {', '.join(TOOL_PACKAGES)}")
        _unpack(apt.download(list(TOOL_PACKAGES), folder / "debs"), folder / "root")
        _stamp(folder).write_text("ok\n")
    return folder / "root"
