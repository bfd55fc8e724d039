"""The current thread's namespace counters: /proc/net/sockstat{,6} and TcpExt of netstat."""

from __future__ import annotations

SOCKSTAT = "/proc/thread-self/net/sockstat"
SOCKSTAT6 = "/proc/thread-self/net/sockstat6"
NETSTAT = "/proc/thread-self/net/netstat"


def read_sockstat(path: str = SOCKSTAT) -> dict[str, dict[str, int]]:
    """A sockstat file of this thread's namespace, parsed by key ('TCP' -> {'inuse': 1})."""
    out: dict[str, dict[str, int]] = {}
    with open(path) as f:
        for line in f:
            proto, _, rest = line.partition(":")
            words = rest.split()
            out[proto.strip()] = {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}
    return out


def synack_retransmits(path: str = NETSTAT) -> int:
    """TcpExt TCPSynRetrans of this thread's namespace: SYN-ACKs the request timer sent again
    (tcp_rtx_synack counts each), so a nonzero rise means reqsk_timer_handler ran."""
    with open(path) as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("TCPSynRetrans", 0))
    return 0
