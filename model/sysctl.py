"""The per-namespace sysctls the model reads, with the kernel's defaults for a new netns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Scenario key -> Sysctls field. Every one of these is per network namespace.
KEYS: dict[str, str] = {
    "net.ipv4.ip_local_port_range": "ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports": "ip_local_reserved_ports",
    "net.ipv4.ip_autobind_reuse": "ip_autobind_reuse",
    "net.ipv4.ip_unprivileged_port_start": "ip_unprivileged_port_start",
    "net.ipv4.ip_nonlocal_bind": "ip_nonlocal_bind",
    "net.core.somaxconn": "somaxconn",
    "net.ipv6.bindv6only": "bindv6only",
    "net.ipv6.ip_nonlocal_bind": "ipv6_nonlocal_bind",
    "net.ipv4.tcp_timestamps": "tcp_timestamps",
    "net.ipv4.tcp_syncookies": "tcp_syncookies",
    "net.ipv4.tcp_abort_on_overflow": "tcp_abort_on_overflow",
    "net.ipv4.tcp_max_syn_backlog": "tcp_max_syn_backlog",
    "net.ipv4.tcp_migrate_req": "tcp_migrate_req",
}


@dataclass(frozen=True)
class Sysctls:
    """Values of a fresh namespace (inet_init_net, netns_core_init, sysctl_net_ipv4.c)."""

    ip_local_port_range: tuple[int, int] = (32768, 60999)
    ip_local_reserved_ports: frozenset[int] = field(default_factory=frozenset)
    ip_autobind_reuse: int = 0
    ip_unprivileged_port_start: int = 1024
    ip_nonlocal_bind: int = 0
    somaxconn: int = 4096
    bindv6only: int = 0
    ipv6_nonlocal_bind: int = 0
    tcp_timestamps: int = 1
    tcp_tw_reuse: int = 2  # not settable by scenarios: 1 and loopback make reuse clock-dependent
    tcp_syncookies: int = 1
    tcp_abort_on_overflow: int = 0
    # tcp_sk_init: max(128, ehash entries / 128), which depends on the machine's memory: None
    # until a scenario sets it (the model then knows only that it is at least 128)
    tcp_max_syn_backlog: int | None = None
    tcp_migrate_req: int = 0

    def with_setting(self, key: str, text: str) -> Sysctls:
        """A copy with one sysctl set from its /proc/sys text; ValueError if malformed."""
        name = KEYS.get(key)
        if name is None:
            raise ValueError(f"unknown sysctl {key!r}; known: {', '.join(sorted(KEYS))}")
        return replace(self, **{name: parse_value(name, text)})


_DIGITS = 10  # /proc/sys integers are C ints (proc_dointvec): ten digits at most
MAX_PORT = 65535


def _is_int(text: str, signed: bool = False) -> bool:
    """ASCII digits only (str.isdigit also takes '²', which int() refuses), bounded length."""
    body = text[1:] if signed and text.startswith("-") else text
    return 0 < len(body) <= _DIGITS and body.isascii() and body.isdigit()


def parse_value(name: str, text: str) -> object:
    if name == "ip_local_port_range":
        # proc_dointvec_minmax reads two whitespace-separated ints (net/ipv4/sysctl_net_ipv4.c
        # ipv4_local_port_range): a comma is not a separator there
        words = text.split()
        if len(words) != 2 or not all(_is_int(w) for w in words):
            raise ValueError(f"expected two ports 'low high', got {text[:40]!r}")
        low, high = int(words[0]), int(words[1])
        if not (1 <= low <= high <= MAX_PORT):
            raise ValueError(f"expected 1 <= low <= high <= 65535, got {text!r}")
        return (low, high)
    if name == "ip_local_reserved_ports":
        # proc_do_large_bitmap: comma-separated ports and LOW-HIGH ranges below 65536
        ports: set[int] = set()
        for w in text.strip().split(","):
            lo, dash, hi = w.strip().partition("-")
            if not _is_int(lo) or (dash and not _is_int(hi)):
                raise ValueError(f"expected ports or ranges like 40000-40010, comma-separated, got {w[:40]!r}")
            first, last = int(lo), int(hi) if dash else int(lo)
            if not first <= last <= MAX_PORT:
                raise ValueError(f"expected ports 0-65535 and LOW <= HIGH, got {w[:40]!r}")
            ports.update(range(first, last + 1))
        return frozenset(ports)
    words = text.split()
    if len(words) != 1 or not _is_int(words[0], signed=True):
        raise ValueError(f"expected an integer, got {text[:40]!r}")
    return int(words[0])
