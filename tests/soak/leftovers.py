"""What a run of ours can leave behind, looked for everywhere it could hide.

Processes (the PIDs a run started and their children, and any process of ours in a network
namespace that no /run/netns name shows), namespaces (ours by name, through pyroute2 and
`ip netns list`), TUN devices (an open /dev/net/tun of such a process; ours are not persistent,
so none outlives its last fd), temp folders and files (the QEMU runner's sockh-vm-<pid>-…,
virtiofsd's /run/virtiofsd lock files) and host mounts naming them.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from procfs import tun_fds

from harness.guests import reap
from netns import namespace

HOST_NETNS = namespace.netns_id("/proc/1/ns/net")
# where virtiofsd started with --socket-path writes its lock (qemu's fuse_virtio.c:fv_socket_lock)
VIRTIOFSD_LOCKS = Path("/run/virtiofsd")


@dataclass(frozen=True)
class Proc:
    """A process, named by PID and start time so a reused PID is not mistaken for it."""

    pid: int
    created: float
    name: str = field(default="", compare=False)

    def alive(self) -> bool:
        try:
            p = psutil.Process(self.pid)
            return p.create_time() == self.created and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def describe(self) -> str:
        try:
            return f"{self.pid} {' '.join(psutil.Process(self.pid).cmdline())[:160]}"
        except psutil.Error:
            return f"{self.pid} (gone)"


def family(root: int) -> set[Proc]:
    """`root` and every descendant now."""
    try:
        top = psutil.Process(root)
        procs = [top, *top.children(recursive=True)]
    except psutil.NoSuchProcess:
        return set()
    found = set()
    for p in procs:
        try:
            found.add(Proc(p.pid, p.create_time(), p.name()))
        except psutil.NoSuchProcess:
            pass
    return found


def _net(pid: int) -> set[tuple[int, int]]:
    """The network namespaces of a process's threads."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return set()
    return {ns for t in tids if (ns := namespace.netns_id(f"/proc/{pid}/task/{t}/ns/net"))}


def named_netns() -> set[tuple[int, int]]:
    """Every network namespace that has a /run/netns name, whoever made it."""
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        return set()
    return {ns for n in names if (ns := namespace.netns_id(f"/run/netns/{n}"))}


def invisible(since: float) -> set[Proc]:
    """Orphaned processes of ours (a worker's name or a sockharness command line; their parent
    gone, they are PID 1's) started after `since` and living in a network namespace neither the
    host's nor named under /run/netns: what `ip netns list` cannot show. (One whose parent
    lives belongs to a run still going, another's perhaps: not left behind, yet.)"""
    named = named_netns() | {HOST_NETNS}
    found = set()
    for pid in psutil.pids():
        try:
            p = psutil.Process(pid)
            if p.create_time() < since or p.ppid() > 1 or not namespace.is_our_worker(p):
                continue
            if _net(pid) - named:
                found.add(Proc(pid, p.create_time()))
        except psutil.Error:
            continue
    return found


def marked(pids: set[int]) -> set[Proc]:
    """Processes whose command line names a temp folder of one of `pids` (QEMU, virtiofsd)."""
    marks = [f"{reap.PREFIX}{p}-" for p in pids]
    found = set()
    for p in psutil.process_iter(["cmdline", "create_time"]):
        if any(m in a for a in p.info["cmdline"] or () for m in marks):
            found.add(Proc(p.pid, p.info["create_time"]))
    return found


def tun_holders(procs: set[Proc]) -> list[str]:
    """The TUN devices an open /dev/net/tun of one of `procs` keeps in existence."""
    return [f"{dev} (pid {pid})" for pid, _, dev in sorted(tun_fds(p.pid for p in procs if p.alive()))]


def namespaces_of(pids: set[int]) -> list[str]:
    """Namespace names of ours owned by one of `pids`, as pyroute2 and `ip netns list` see them."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    names = set(namespace.ours()) | {n for n in listed if n.startswith(namespace.PREFIX)}
    return sorted(n for n in names if any(n.startswith(f"{namespace.PREFIX}{p}-") for p in pids))


def tun_in(names: list[str]) -> list[str]:
    """TUN devices inside the named namespaces that are still there."""
    found = []
    for name in names:
        out = subprocess.run(["ip", "-n", name, "-o", "link", "show", "type", "tun"],
                             capture_output=True, text=True).stdout
        found += [f"{name}: {line.split(':')[1].strip()}" for line in out.splitlines() if ":" in line]
    return found


def temp_files(pids: set[int]) -> list[str]:
    """Temp folders and files of ours owned by one of `pids` (reap.temp_prefix names them),
    virtiofsd lock files naming them, and host mounts under them."""
    marks = [f"{reap.PREFIX}{p}-" for p in pids]
    found = [str(d) for d in Path("/tmp").glob(reap.PREFIX + "*") if any(d.name.startswith(m) for m in marks)]
    if VIRTIOFSD_LOCKS.is_dir():
        found += [str(f) for f in VIRTIOFSD_LOCKS.iterdir() if any(m in f.name for m in marks)]
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    found += [f"mount: {line}" for line in mounts if any(m in line for m in marks)]
    return found


@dataclass
class Left:
    """Everything found; empty when a run left nothing."""

    processes: list[str] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    tuns: list[str] = field(default_factory=list)
    temp: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.processes or self.namespaces or self.tuns or self.temp)


def survey(started: set[Proc], owners: set[int], since: float) -> Left:
    """What is left of the processes `started` (a run and its children, sampled while it ran),
    of the namespaces and temp files named after `owners`, and of processes of ours created
    after `since` in namespaces no name shows (seen twice, a second apart: not one on its way
    out)."""
    hidden = invisible(since)
    if hidden:
        time.sleep(1)
        hidden &= invisible(since)
    live = {p for p in started | marked(owners) if p.alive()} | hidden
    names = namespaces_of(owners)
    return Left(processes=sorted(p.describe() + (" [in an unnamed netns]" if p in hidden else "")
                                 for p in live),
                namespaces=names, tuns=tun_holders(live) + tun_in(names), temp=temp_files(owners))


def settle(started: set[Proc], owners: set[int], since: float, timeout: float = 10.0) -> Left:
    """survey() until it finds nothing or `timeout` seconds pass (a child killed with its parent
    takes a moment to exit); the last survey."""
    deadline = time.monotonic() + timeout
    while True:
        left = survey(started, owners, since)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)
