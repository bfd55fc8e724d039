"""The guest's host root is read-only on the host's side: a guest that remounts its view
read-write and writes outside the writable folders gets EROFS, and the host file is unchanged.

Boots Debian's 6.12 kernel (fetched into .cache/kernels) once; `make soak-export`. The writable
folder lies under /tmp, which the guest covers with its own tmpfs: it is bound back after it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import uuid
from pathlib import Path

import psutil
import pytest

from harness.guests import command as run
from harness.guests import fetch, qemu

pytestmark = [pytest.mark.soak, pytest.mark.kernel]


def _mountinfo() -> list[str]:
    """The host's mounts (this process's namespace) as mount point and source, but for
    /run/netns, where concurrent runs add and remove their namespaces."""
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if not fields[4].startswith("/run/netns"):
            found.append(" ".join(fields[3:5]) + " " + line.partition(" - ")[2])
    return sorted(found)


def test_guest_writes_outside_the_writable_folders_get_erofs(tmp_path):
    if not shutil.which("qemu-system-x86_64"):
        pytest.fail("qemu-system-x86_64 is missing: `make kernel-tools` installs it")
    fetch.fetch_tools(run.CACHE)
    guest = fetch.fetch_release(next(k for k in fetch.KERNELS if k.version == "6.12"), run.CACHE)
    tools = qemu.find_tools(run.CACHE)
    accel, _ = run.choose_accel(tools, guest, tmp_path)
    host_dir = run.CACHE / f"export-test-{uuid.uuid4().hex[:8]}"  # under no guest tmpfs
    host_dir.mkdir(parents=True)
    try:
        host_file, new_file = host_dir / "host-file.txt", host_dir / "new-file.txt"
        host_file.write_text("original\n")
        out = tmp_path / "out"
        out.mkdir()
        q = shlex.quote
        command = "; ".join([
            "mount -o remount,bind,rw / || { echo REMOUNT-FAILED; exit 90; }",  # past the guest's own ro
            f"echo changed > {q(str(host_file))}; echo W-ROOT $?",
            f"touch {q(str(new_file))}; echo W-NEW $?",
            # a fresh mount of the root's tag, guest-side read-write from the start
            f"mkdir -p /tmp/again && mount -t virtiofs {qemu.TAG} /tmp/again && echo MOUNTED-AGAIN",
            f"echo changed > {q('/tmp/again' + str(host_file))}; echo W-AGAIN $?",
            f"echo ok > {q(str(out / 'ok.txt'))}; echo W-OUT $?",
            "echo CHECK-HOST",
            "sleep 2",
        ])
        before = _mountinfo()
        lines: list[str] = []
        during: dict[str, object] = {}

        def seen(line: str) -> None:
            lines.append(line)
            if line.startswith("CHECK-HOST"):  # the daemons run: the host's mounts, their namespaces
                during["mounts"] = _mountinfo()
                daemons = [p for p in psutil.Process().children() if p.name() == "virtiofsd"]
                during["daemons"] = len(daemons)
                during["own_ns"] = all(os.stat(f"/proc/{p.pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino
                                       for p in daemons)

        result = qemu.boot(tools, guest, command, accel=accel, writable=[out], log=tmp_path / "console.log",
                           timeout=600, on_line=seen)
        said = "\n".join(lines)
        assert result.exit_code == 0, (result.reason, said)
        assert "REMOUNT-FAILED" not in said and "MOUNTED-AGAIN" in said, said
        for mark in ("W-ROOT", "W-NEW", "W-AGAIN"):
            status = next(ln for ln in lines if ln.startswith(mark)).split()[1]
            assert status != "0", f"{mark}: the guest's write succeeded\n{said}"
        assert said.count("Read-only file system") >= 3, said  # EROFS, from the host's VFS
        assert host_file.read_text() == "original\n" and not new_file.exists()
        assert (out / "ok.txt").read_text() == "ok\n"  # the writable export does write
        assert during.get("daemons") == 2 and during["own_ns"], during
        assert during["mounts"] == before == _mountinfo()  # nothing mounted in the host's namespace
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)
