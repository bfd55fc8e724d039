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
        """A copy with one sysctl set from its /proc/sys text, as the kernel's handler would
        take it written now (after the settings already in self); ValueError where the handler
        refuses it (the write is EINVAL) or the text is malformed."""
        name = KEYS.get(key)
        if name is None:
            raise ValueError(f"unknown sysctl {key!r}; known: {', '.join(sorted(KEYS))}")
        value = parse_value(name, text)
        _check_against(self, key, name, value, text)
        return replace(self, **{name: value})


INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
MAX_PORT = 65535


@dataclass(frozen=True)
class Limits:
    """The values a sysctl's /proc handler accepts on 6.18, and where that range comes from."""

    low: int
    high: int
    source: str


_U8 = "proc_dou8vec_minmax without extra1/extra2 (kernel/sysctl.c: 0..255)"
_U8_BOOL = "proc_dou8vec_minmax, extra1 SYSCTL_ZERO, extra2 SYSCTL_ONE"
_IPV4 = "net/ipv4/sysctl_net_ipv4.c ipv4_net_table"
_IPV6 = "net/ipv6/sysctl_net_ipv6.c ipv6_table_template"
# The ranges are 6.18's, each also written and refused at its bounds in a namespace on this
# host's 6.18 kernel. Kernels older than proc_dou8vec_minmax (5.13) are expected to read the u8
# ones as ints (proc_dointvec), a wider range, so a scenario valid here would also write there:
# not yet checked against 5.10's source or a booted 5.10 (tcp_migrate_req is 5.14+, and
# Profile.unsupported already skips it there).
LIMITS: dict[str, Limits] = {
    "somaxconn": Limits(0, INT_MAX, "net/core/sysctl_net_core.c netns_core_table: "
                        "proc_dointvec_minmax, extra1 SYSCTL_ZERO"),
    "tcp_syncookies": Limits(0, 255, f"{_IPV4}: {_U8}"),
    "tcp_timestamps": Limits(0, 255, f"{_IPV4}: {_U8}"),
    "tcp_abort_on_overflow": Limits(0, 255, f"{_IPV4}: {_U8}"),
    "ip_nonlocal_bind": Limits(0, 255, f"{_IPV4}: {_U8}"),
    "tcp_migrate_req": Limits(0, 1, f"{_IPV4}: {_U8_BOOL}"),
    "ip_autobind_reuse": Limits(0, 1, f"{_IPV4}: {_U8_BOOL}"),
    "tcp_max_syn_backlog": Limits(INT_MIN, INT_MAX, f"{_IPV4}: proc_dointvec (any C int)"),
    "ip_unprivileged_port_start": Limits(0, MAX_PORT, "net/ipv4/sysctl_net_ipv4.c "
                                         "ipv4_privileged_ports: ip_privileged_port_min..max"),
    "ip_local_port_range": Limits(1, MAX_PORT, "net/ipv4/sysctl_net_ipv4.c "
                                  "ipv4_local_port_range: ip_local_port_range_min..max"),
    "ip_local_reserved_ports": Limits(0, MAX_PORT, f"{_IPV4}: proc_do_large_bitmap over "
                                      "65536 bits"),
    "bindv6only": Limits(0, 255, f"{_IPV6}: {_U8}"),
    "ipv6_nonlocal_bind": Limits(0, 255, f"{_IPV6}: {_U8}"),
}

# Scenario values are ASCII decimal (the kernel's proc_get_long reads base 0, so "010" would be
# 8 there): at most ten digits, a C int's, then range-checked against LIMITS.
_DIGITS = 10


def _is_int(text: str, signed: bool = False) -> bool:
    """ASCII digits only (str.isdigit also takes '²', which int() refuses), bounded length."""
    body = text[1:] if signed and text.startswith("-") else text
    return 0 < len(body) <= _DIGITS and body.isascii() and body.isdigit()


def _limit(name: str, value: int, text: str) -> int:
    lim = LIMITS[name]
    if not lim.low <= value <= lim.high:
        key = next(k for k, v in KEYS.items() if v == name)
        raise ValueError(f"expected {key} {lim.low}..{lim.high}, got {text[:40]!r}: the kernel "
                         f"refuses it (EINVAL; {lim.source})")
    return value


def parse_value(name: str, text: str) -> object:
    if name == "ip_local_port_range":
        # proc_dointvec_minmax reads two whitespace-separated ints (net/ipv4/sysctl_net_ipv4.c
        # ipv4_local_port_range): a comma is not a separator there
        words = text.split()
        if len(words) != 2 or not all(_is_int(w) for w in words):
            raise ValueError(f"expected two ports 'low high', got {text[:40]!r}")
        low, high = (_limit(name, int(w), text) for w in words)
        if high < low:  # ipv4_local_port_range: range[1] < range[0] -> -EINVAL
            raise ValueError(f"expected low <= high, got {text[:40]!r}: the kernel refuses it "
                             "(EINVAL; net/ipv4/sysctl_net_ipv4.c ipv4_local_port_range)")
        return (low, high)
    if name == "ip_local_reserved_ports":
        # proc_do_large_bitmap: comma-separated ports and LOW-HIGH ranges below 65536 (written
        # back without the spaces it would refuse: proc_text)
        ports: set[int] = set()
        for w in text.strip().split(","):
            lo, dash, hi = w.strip().partition("-")
            if not _is_int(lo) or (dash and not _is_int(hi)):
                raise ValueError(f"expected ports or ranges like 40000-40010, comma-separated, got {w[:40]!r}")
            first, last = int(lo), int(hi) if dash else int(lo)
            if not first <= last <= MAX_PORT:  # proc_do_large_bitmap: val_b >= bitmap_len, val_a > val_b
                raise ValueError(f"expected ports 0-65535 and LOW <= HIGH, got {w[:40]!r}")
            ports.update(range(first, last + 1))
        return frozenset(ports)
    words = text.split()
    if len(words) != 1 or not _is_int(words[0], signed=True):
        raise ValueError(f"expected an integer, got {text[:40]!r}")
    return _limit(name, int(words[0]), text)


def _check_against(current: Sysctls, key: str, name: str, value: object, text: str) -> None:
    """The checks a handler makes against another sysctl, as it finds it when written."""
    if name == "ip_local_port_range":
        low = value[0]  # type: ignore[index]
        start = current.ip_unprivileged_port_start
        if low < start:  # ipv4_local_port_range: range[0] < sysctl_ip_prot_sock -> -EINVAL
            raise ValueError(f"expected a low port >= net.ipv4.ip_unprivileged_port_start ({start}), "
                             f"got {text[:40]!r}: the kernel refuses it (EINVAL; "
                             "net/ipv4/sysctl_net_ipv4.c ipv4_local_port_range)")
    elif name == "ip_unprivileged_port_start":
        low = current.ip_local_port_range[0]
        if low < value:  # type: ignore[operator]  # ipv4_privileged_ports: range[0] < pports
            raise ValueError(f"expected at most the low end of net.ipv4.ip_local_port_range ({low}), "
                             f"got {text[:40]!r}: the kernel refuses it (EINVAL; "
                             "net/ipv4/sysctl_net_ipv4.c ipv4_privileged_ports)")


def _runs(ports: frozenset[int]) -> list[str]:
    """Ports as proc_do_large_bitmap ranges: [40000, 40001, 40003] -> ['40000-40001', '40003']."""
    runs: list[list[int]] = []
    for p in sorted(ports):
        if runs and runs[-1][1] == p - 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    return [str(a) if a == b else f"{a}-{b}" for a, b in runs]


def proc_text(key: str, text: str) -> str:
    """The text the harness writes to /proc/sys for a scenario value: the value the model
    read, in decimal and the separators the handler takes (proc_get_long reads base 0, so a
    raw "010" would be 8; proc_do_large_bitmap refuses a space after a comma)."""
    value = parse_value(KEYS[key], text)
    if isinstance(value, tuple):
        return f"{value[0]} {value[1]}"
    if isinstance(value, frozenset):
        return ",".join(_runs(value))
    return str(value)
