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
    """Write a sysctl of the namespace this process is in; never the host's. The text goes as
    given (callers write the model's normalised value, model.sysctl.proc_text); a refusal is an
    OSError naming the key and the value."""
    if current_is_host():
        raise HostSysctlRefused(f"refusing to set {key} in the host's network namespace")
    try:
        _path(key).write_text(value + "\n")
    except OSError as e:
        raise OSError(e.errno, f"writing {value[:40]!r} to {key}: {e.strerror}") from None
