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


def parse_value(name: str, text: str) -> object:
    words = text.replace(",", " ").split()
    if name == "ip_local_port_range":
        if len(words) != 2 or not all(w.isdigit() for w in words):
            raise ValueError(f"expected two ports 'low high', got {text!r}")
        low, high = int(words[0]), int(words[1])
        if not (1 <= low <= high <= 65535):
            raise ValueError(f"expected 1 <= low <= high <= 65535, got {text!r}")
        return (low, high)
    if name == "ip_local_reserved_ports":
        ports: set[int] = set()
        for w in words:
            lo, _, hi = w.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()):
                raise ValueError(f"expected ports or ranges like 40000-40010, got {w!r}")
            ports.update(range(int(lo), int(hi or lo) + 1))
        return frozenset(ports)
    if len(words) != 1 or not words[0].lstrip("-").isdigit():
        raise ValueError(f"expected an integer, got {text!r}")
    return int(words[0])
