"""The host side of the guest's two virtiofs shares: the host root read-only, the results writable.

QEMU 7.2's C virtiofsd (the one used here: fetch.TOOLS) has no read-only option, so each daemon
starts in a mount namespace of its own (unshare(CLONE_NEWNS) before exec, all mounts private, so
nothing reaches the host's namespace) and exports a view made there: for the root, a recursive
bind of / made read-only with mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY), so a guest write
gets EROFS from the host's VFS whatever the guest remounts; for the results, a tmpfs holding a
bind of exactly each writable folder (numbered 0, 1, … in `writable_order`). The daemon's copy
of /run/netns is unmounted there, so it pins no network namespace of a concurrent run.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from pathlib import Path

from harness import lifetime

CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
MNT_DETACH = 2
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
MOUNT_ATTR_RDONLY = 0x1
SYS_MOUNT_SETATTR = 442  # x86_64 and every architecture since 5.12 (include/uapi/asm-generic/unistd.h)

# resolved in the parent: the child between fork and exec only calls them
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]


class _MountAttr(ctypes.Structure):
    """struct mount_attr (include/uapi/linux/mount.h)."""

    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        msg = f"sockharness: virtiofsd's mount namespace: {what}: {os.strerror(err)}\n"
        os.write(2, msg.encode())  # the daemon's log; Popen itself only says preexec_fn failed
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _private_namespace() -> None:
    """A mount namespace of our own whose mounts and unmounts never propagate to the host's."""
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def _unescape(field: str) -> str:
    """A mountinfo path: space, tab, newline and backslash are written as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _drop_netns_mounts() -> None:
    """Detach every nsfs mount of this (private) namespace: a copied /run/netns/NAME would keep
    that network namespace alive as long as the daemon runs."""
    with open("/proc/self/mountinfo", "rb") as f:
        lines = f.read().decode(errors="surrogateescape").splitlines()
    for line in lines:
        fields, _, tail = line.partition(" - ")
        if tail.split(" ", 1)[0] == "nsfs":
            _libc.umount2(os.fsencode(_unescape(fields.split(" ")[4])), MNT_DETACH)


def readonly_root(view: Path) -> Callable[[], None]:
    """A preexec_fn: / bound recursively at `view` (an empty folder), every mount of it read-only."""
    target = os.fsencode(view)
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)

    def setup() -> None:
        _private_namespace()
        _check(_libc.mount(b"/", target, None, MS_BIND | MS_REC, None), f"mount --rbind / {view}")
        # fs/namespace.c:mount_setattr_commit: with AT_RECURSIVE, every mount of the subtree (next_mnt)
        _check(_libc.syscall(ctypes.c_long(SYS_MOUNT_SETATTR), ctypes.c_int(AT_FDCWD),
                             ctypes.c_char_p(target), ctypes.c_uint(AT_RECURSIVE),
                             ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))),
               f"mount_setattr({view}, AT_RECURSIVE, MOUNT_ATTR_RDONLY) (Linux 5.12+)")
        _drop_netns_mounts()
        lifetime.die_with_parent()

    return setup


def writable_order(writable: list[Path]) -> list[Path]:
    """The writable folders as numbered in the export: outer before inner, so a nested one's
    bind in the guest lands on top of its parent's."""
    return sorted(dict.fromkeys(writable), key=lambda p: len(p.parts))


def writable_folders(view: Path, writable: list[Path]) -> Callable[[], None]:
    """A preexec_fn: a tmpfs at `view` holding view/N bound to the Nth writable folder, nothing else."""
    target = os.fsencode(view)
    folders = [os.fsencode(p) for p in writable_order(writable)]

    def setup() -> None:
        _private_namespace()
        _check(_libc.mount(b"tmpfs", target, b"tmpfs", 0, b"mode=0755,size=64k"), f"mount tmpfs {view}")
        for i, folder in enumerate(folders):
            inside = target + b"/" + str(i).encode()
            os.mkdir(inside)
            _check(_libc.mount(folder, inside, None, MS_BIND, None), f"mount --bind {os.fsdecode(folder)}")
        _drop_netns_mounts()
        lifetime.die_with_parent()

    return setup
