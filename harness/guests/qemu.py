"""Boot one kernel under QEMU with the host's root shared read-only over virtiofs.

The guest's /init (busybox) loads modules, mounts the host root (exported read-only by the host:
export.readonly_root) read-only at /newroot, and the writable folders from a second export that
holds exactly those (export.writable_folders), gives it its own /proc, /sys, /dev, /tmp and /run
(so nothing the guest does lands in the host's /run/netns or /tmp), runs one command chrooted
there, prints its exit status as a console marker and powers off. Paths under those private /tmp
and /run (a checkout in /tmp) are bound back from the host after them. virtiofsd and QEMU are our
children and are killed by PID on every exit path.
"""

from __future__ import annotations

import os
import selectors
import shlex
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from harness import lifetime
from harness.guests import export, initramfs, reap

EXIT_MARK = "SOCKH-EXIT "
READY_MARK = "SOCKH-READY"
# printed by the guest's command when a path it needs (the project, its python) is not there
MISSING_MARK = "SOCKH-MISSING "
# printed by /init for a module it was asked about (found nowhere on the host) that the
# running kernel has built in after all: code of that name in /proc/kallsyms, not a module's
BUILTIN_MARK = "SOCKH-BUILTIN "
# the modules the mounted virtiofs root proves present, whatever their symbols' names
_ROOT_MODULES = ("virtio_pci", "fuse", "virtiofs")
# the folders /init mounts a tmpfs of the guest's own over: a host path under one of them is
# hidden in the guest unless bound back (init_script)
GUEST_TMPFS = (Path("/tmp"), Path("/run"), Path("/dev/shm"), Path("/var/tmp"))
TAG = "hostroot"
RW_TAG = "hostrw"  # the writable folders, numbered as export.writable_order does
# No Spectre/Meltdown mitigations in the guest: emulated page-table isolation flushes TCG's TLB
# on every syscall (measured ~15% of a corpus run); socket semantics do not depend on them.
CMDLINE_EXTRA = "mitigations=off"


class Accel(Enum):
    KVM = "kvm"
    TCG = "tcg,thread=multi"  # a host thread per vCPU
    # all vCPUs on one host thread: guests side by side then never hold more vCPU threads than
    # the host has cores (oversubscribed multi-threaded TCG ran ~5x slower here)
    TCG_SINGLE = "tcg,thread=single"


@dataclass(frozen=True)
class Tools:
    qemu: Path
    virtiofsd: Path
    busybox: Path


@dataclass(frozen=True)
class Guest:
    """A bootable kernel: its image and its modules tree (or build tree; none for a bare
    image). `missing_ok`: boot even if a module the guest wants is neither found nor known
    built in (a kernel given by path, which may have it built in without saying so)."""

    release: str
    vmlinuz: Path
    moddir: Path | None
    missing_ok: bool = False


@dataclass
class BootResult:
    exit_code: int | None  # the command's status; None if the guest never reported one
    seconds: float
    log: Path
    reason: str = ""  # why there is no exit code (timeout, panic, QEMU error)
    builtin: tuple[str, ...] = ()  # of the modules asked about (probe), those the kernel has


INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t devtmpfs dev /dev
mount -t proc proc /proc
mount -t sysfs sys /sys
for m in /modules/*.ko; do [ -e "$m" ] || continue; insmod "$m" 2>/dev/null || echo "SOCKH: insmod $m failed"; done
mount -t virtiofs {tag} /host || {{ echo "{exit_mark}-1 cannot mount the host root"; poweroff -f; }}
{rw_mount}
mount --bind /host /newroot && mount -o remount,bind,ro /newroot
mount -t proc proc /newroot/proc
mount -t sysfs sys /newroot/sys
mount -t devtmpfs dev /newroot/dev
mkdir -p /newroot/dev/pts /newroot/dev/shm 2>/dev/null
mount -t devpts devpts /newroot/dev/pts
{probes}
for d in {tmpfs}; do mount -t tmpfs tmpfs "$d"; done
{ro_binds}
{rw_binds}
mkdir -p /newroot/run/netns
ip link set lo up 2>/dev/null
echo {ready}
chroot /newroot /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/root \
  PYTHONDONTWRITEBYTECODE=1 TERM=dumb {env} /bin/sh -c {command}
echo "{exit_mark}$?"
sync
poweroff -f
"""


def find_tools(cache: Path) -> Tools:
    """QEMU from PATH; virtiofsd and busybox from PATH or the cache (fetch.host_tools)."""
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        raise FileNotFoundError("qemu-system-x86_64 is not installed (run `make kernels`, which "
                                "installs it, or install QEMU 8+)")
    candidates = [Path(p) for p in (shutil.which("virtiofsd") or "", "/usr/libexec/virtiofsd",
                                    "/usr/lib/qemu/virtiofsd") if p]
    candidates.append(cache / "tools/root/usr/lib/qemu/virtiofsd")
    virtiofsd = next((p for p in candidates if p.exists()), None)
    busybox = next((Path(p) for p in (cache / "tools/root/bin/busybox",) if Path(p).exists()), None)
    if not virtiofsd or not busybox:
        raise FileNotFoundError(f"virtiofsd or busybox missing under {cache}/tools (run `make kernels`)")
    return Tools(Path(qemu), virtiofsd, busybox)


def _under_tmpfs(path: Path) -> bool:
    return any(path == d or d in path.parents for d in GUEST_TMPFS)


def init_script(command: str, writable: list[Path], env: dict[str, str],
                readonly: list[Path] = (), probe: list[str] = ()) -> str:
    """The guest's /init. `writable` folders are bound from the writable export (RW_TAG); `readonly`
    ones (the project, its virtualenv) are bound back read-only where they lie under a folder
    the guest mounts its own tmpfs over (GUEST_TMPFS), which would hide them; both after the
    tmpfs mounts. Every path is quoted. `probe`: modules not found on the host, each reported
    with BUILTIN_MARK if the kernel has it built in."""
    q = shlex.quote
    probes = "\n".join(
        f"echo {q(BUILTIN_MARK + m)}" if m in _ROOT_MODULES else
        f"grep -q {q(f' [tT] {m}_[^[]*$')} /proc/kallsyms && echo {q(BUILTIN_MARK + m)}"
        for m in probe)
    ro = [p for p in dict.fromkeys(readonly) if _under_tmpfs(p)]
    ro = [p for p in ro if not any(o in p.parents for o in ro)]  # the outermost of nested ones
    ro_binds = "\n".join(
        f"mkdir -p {q(f'/newroot{p}')} && mount --bind {q(f'/host{p}')} {q(f'/newroot{p}')} && "
        f"mount -o remount,bind,ro {q(f'/newroot{p}')}" for p in ro)
    rw_binds = "\n".join(f"mkdir -p {q(f'/newroot{p}')}; mount --bind /rw/{i} {q(f'/newroot{p}')}"
                         for i, p in enumerate(export.writable_order(writable)))
    rw_mount = (f'mount -t virtiofs {RW_TAG} /rw || {{ echo "{EXIT_MARK}-1 cannot mount the writable '
                f'folders"; poweroff -f; }}') if writable else ""
    return INIT.format(tag=TAG, exit_mark=EXIT_MARK, ready=READY_MARK, ro_binds=ro_binds, probes=probes,
                       rw_mount=rw_mount,
                       rw_binds=rw_binds, command=q(command),
                       tmpfs=" ".join(q(f"/newroot{d}") for d in GUEST_TMPFS),
                       env=" ".join(q(f"{k}={v}") for k, v in env.items()))


def guarded(command: str, needed: list[Path]) -> str:
    """`command` after a check that each needed path exists in the guest; the first missing
    one is printed as one MISSING_MARK line (the host reports it) and the command exits 127."""
    q = shlex.quote
    checks = "".join(f"[ -e {q(str(p))} ] || {{ echo {q(MISSING_MARK + str(p))}; exit 127; }}; "
                     for p in needed)
    return checks + command


def boot(tools: Tools, guest: Guest, command: str, *, accel: Accel, writable: list[Path],
         log: Path, timeout: float, env: dict[str, str] | None = None, cpus: int = 2,
         memory_mb: int = 1536, readonly: list[Path] = (),
         on_line: Callable[[str], None] | None = None) -> BootResult:
    """Run `command` (a shell line, in the host's root) inside `guest`; wait for its exit code.
    `writable` and `readonly`: see init_script."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=reap.temp_prefix()) as tmp:
        tmpdir = Path(tmp)
        initrd = tmpdir / "initrd.gz"
        modules, missing = initramfs.plan(guest.moddir)
        if missing and not guest.missing_ok:
            raise FileNotFoundError(f"module {', '.join(missing)} is neither built in nor under "
                                    f"{guest.moddir}")
        initrd.write_bytes(initramfs.build(
            tools.busybox, modules, init_script(command, writable, env or {}, readonly, missing)))
        procs: list[subprocess.Popen] = []
        try:
            shares = [(TAG, tmpdir / "ro", export.readonly_root)]
            if writable:
                shares.append((RW_TAG, tmpdir / "rw", lambda view: export.writable_folders(view, writable)))
            devices: list[str] = []
            for tag, view, setup in shares:
                view.mkdir()
                sock, vlog = tmpdir / f"{tag}.sock", log.with_suffix(f".virtiofsd-{tag}.log")
                try:
                    procs.append(_start_virtiofsd(tools.virtiofsd, sock, view, setup(view), vlog))
                except subprocess.SubprocessError:  # its mount namespace could not be made
                    why = vlog.read_text(errors="replace").strip().splitlines()
                    return BootResult(None, time.monotonic() - start, log,
                                      f"virtiofsd ({tag}) did not start: {why[-1] if why else 'no log'}")
                devices += ["-chardev", f"socket,id={tag},path={sock}",
                            "-device", f"vhost-user-fs-pci,chardev={tag},tag={tag},queue-size=1024"]
            qemu = _start(
                [str(tools.qemu), "-accel", accel.value, "-cpu", "host" if accel is Accel.KVM else "max",
                 "-smp", str(cpus), "-m", f"{memory_mb}M",
                 "-object", f"memory-backend-memfd,id=mem,size={memory_mb}M,share=on",
                 "-machine", "q35,memory-backend=mem", "-nodefaults", "-no-user-config",
                 "-display", "none", "-serial", "stdio", "-no-reboot", *devices,
                 "-kernel", str(guest.vmlinuz), "-initrd", str(initrd),
                 "-append", "console=ttyS0 quiet loglevel=3 panic=-1 oops=panic " + CMDLINE_EXTRA],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            procs.append(qemu)
            return _follow(qemu, log, start, timeout, on_line)
        finally:
            for p in reversed(procs):
                _stop(p)


def _start_virtiofsd(virtiofsd: Path, sock: Path, view: Path, setup: Callable[[], None],
                     log: Path) -> subprocess.Popen:
    """virtiofsd exporting `view` as `setup` (its preexec_fn: export.py) makes it in its own
    mount namespace, on a listening socket made here and passed as --fd: QEMU can connect at
    once, and virtiofsd writes no /run/virtiofsd/*.pid lock (it does for --socket-path, and
    never removes it)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(sock))
        listener.listen(1)
        with open(log, "wb") as err:
            return _start([str(virtiofsd), f"--fd={listener.fileno()}", "-o", f"source={view}",
                           "-o", "cache=auto", "-o", "no_xattr", "-o", "sandbox=chroot"],
                          preexec=setup, pass_fds=(listener.fileno(),), stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=err)
    finally:
        listener.close()


def _follow(qemu: subprocess.Popen, log: Path, start: float, timeout: float,
            on_line: Callable[[str], None] | None) -> BootResult:
    code: int | None = None
    reason = ""
    builtin: list[str] = []
    sel = selectors.DefaultSelector()
    assert qemu.stdout is not None
    os.set_blocking(qemu.stdout.fileno(), False)
    sel.register(qemu.stdout, selectors.EVENT_READ)
    pending = b""
    with open(log, "wb") as out:
        while True:
            left = timeout - (time.monotonic() - start)
            if left <= 0:
                reason = f"timed out after {timeout:.0f} s"
                break
            if not sel.select(timeout=min(left, 1.0)):
                if qemu.poll() is not None:
                    break
                continue
            chunk = qemu.stdout.read(65536) or b""
            if not chunk:
                if qemu.poll() is not None:
                    break
                time.sleep(0.05)
                continue
            out.write(chunk)
            out.flush()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace").rstrip("\r")
                if line.startswith(EXIT_MARK):
                    status, _, why = line[len(EXIT_MARK):].partition(" ")
                    try:
                        code = int(status)
                    except ValueError:
                        reason = line
                    if why.strip() and not reason:  # /init's own failure ("-1 cannot mount …")
                        reason = why.strip()
                elif line.startswith(BUILTIN_MARK):
                    builtin.append(line[len(BUILTIN_MARK):].strip())
                elif line.startswith(MISSING_MARK):
                    reason = f"not found inside the guest: {line[len(MISSING_MARK):]}"
                elif on_line:
                    on_line(line)
    sel.close()
    if code is None and not reason:
        reason = f"the guest stopped without reporting (QEMU exit {qemu.poll()}); see {log}"
    return BootResult(code, time.monotonic() - start, log, reason, tuple(builtin))


_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()
_stopping = threading.Event()


def _start(argv: list[str], preexec: Callable[[], None] = lifetime.die_with_parent, **kw) -> subprocess.Popen:
    """Start a child that dies with the thread that started it (PR_SET_PDEATHSIG; `preexec`
    arms it, after any set-up of its own), so a killed run leaves no QEMU or virtiofsd behind;
    remembered for stop_all."""
    with _live_lock:
        if _stopping.is_set():
            raise KeyboardInterrupt("stopping: no new QEMU or virtiofsd")
        proc = subprocess.Popen(argv, preexec_fn=preexec, **kw)
        _live.add(proc)
    return proc


def stop_all() -> None:
    """Stop every QEMU and virtiofsd this process started and that still runs, and start no
    more (Ctrl-C, SIGTERM)."""
    with _live_lock:
        _stopping.set()
        procs = list(_live)
    for p in procs:
        _stop(p)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a child we started, by PID: TERM, then KILL."""
    with _live_lock:
        _live.discard(proc)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
