"""Per-namespace sysctls through /proc/sys, refused in the host's namespace."""

from __future__ import annotations

from pathlib import Path

from netns.namespace import current_is_host


class HostSysctlRefused(RuntimeError):
    """Raised instead of writing a sysctl while in the host's namespace."""


def _path(key: str) -> Path:
    return Path("/proc/sys") / key.replace(".", "/")


def read(key: str) -> str:
    return " ".join(_path(key).read_text().split())


def write(key: str, value: str) -> None:
    """Write a sysctl of the namespace this process is in; never the host's."""
    if current_is_host():
        raise HostSysctlRefused(f"refusing to set {key} in the host's network namespace")
    _path(key).write_text(value + "\n")
