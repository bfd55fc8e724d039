"""netns/diag.py on the running kernel: sock_diag's listeners with their accept queues, request
sockets and TIME_WAIT sockets, read with plain netlink in a namespace of a child process's own
(unshare: it ends with the process, nothing is left behind)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from model.profiles import parse_release

pytestmark = pytest.mark.kernel
ROOT = Path(__file__).parents[2]

CHILD = r"""
import ctypes, json, socket, struct, time
from pyroute2 import IPRoute
from netns.counters import read_sockstat
from netns.diag import TCPF_LISTEN, TCPF_SYN_RECV, DiagUnavailable, destroy_timewait, tcp_sockets

assert ctypes.CDLL(None, use_errno=True).unshare(0x40000000) == 0  # CLONE_NEWNET
with IPRoute() as ip:
    ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")
out = {}
a = socket.socket(); a.bind(("127.0.0.1", 8080)); a.listen(8)
b = socket.socket(socket.AF_INET6); b.bind(("::1", 8081)); b.listen(8)
clients = [socket.create_connection(("127.0.0.1", 8080)) for _ in range(3)]
clients.append(socket.create_connection(("::1", 8081)))
time.sleep(0.05)
out["listeners"] = sorted([m.src, m.sport, m.rqueue, m.inode] for m in tcp_sockets(TCPF_LISTEN))
out["inodes"] = sorted([__import__("os").fstat(s.fileno()).st_ino for s in (a, b)])
out["requests"] = [m.sport for m in tcp_sockets(TCPF_SYN_RECV)]
# a TIME_WAIT socket: the client closes first after the server accepted
child, _ = a.accept(); clients[0].close(); child.close(); time.sleep(0.05)
out["tw_before"] = read_sockstat()["TCP"]["tw"]
try:
    out["destroyed"] = destroy_timewait()
except DiagUnavailable:
    out["destroyed"] = "unavailable"
out["tw_after"] = read_sockstat()["TCP"]["tw"]
print(json.dumps(out))
"""


def release_version() -> tuple[int, int]:
    return parse_release(os.uname().release)


def test_sock_diag_reads_listeners_queues_and_destroys_timewait():
    r = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert [x[:3] for x in out["listeners"]] == [["127.0.0.1", 8080, 3], ["::1", 8081, 1]]
    assert sorted(x[3] for x in out["listeners"]) == out["inodes"]
    assert out["requests"] == []  # every handshake completed: no request socket is left
    assert out["tw_before"] == 1
    if release_version() < (6, 1):
        # SOCK_DESTROY of a TIME_WAIT socket is 6.1+ (tcp.c:tcp_abort answers EOPNOTSUPP for
        # any !sk_fullsock but a request before)
        assert out["destroyed"] == "unavailable" and out["tw_after"] == 1
    else:
        assert out["destroyed"] == 1 and out["tw_after"] == 0


ORPHAN_CHILD = r"""
import ctypes, json, socket, subprocess, sys, time
from harness.inject import Flow, TunInjector
from harness.kernel_backend import settle_orphans
from netns import devices
from netns.counters import read_sockstat
from netns.diag import Conn, still_closing

assert ctypes.CDLL(None, use_errno=True).unshare(0x40000000) == 0  # CLONE_NEWNET
built = devices.build()
inj = TunInjector(built.tun_fds)
lsock = socket.socket(); lsock.bind(("10.0.0.1", 8080)); lsock.listen(8)
shook = inj.handshake([Flow("198.18.0.7", 4000, "10.0.0.1", 8080)])
child, _ = lsock.accept()
conn = Conn(socket.AF_INET, child.getsockname(), child.getpeername())
out = {"kind": shook[0].kind, "open": still_closing([conn]) == []}
child.close()  # its FIN leaves by the TUN and nobody ACKs it: an orphan in FIN_WAIT1
try:
    out["closing"] = still_closing([conn]) == [conn]
    out["host_count"] = read_sockstat()["TCP"]["orphan"]
    # another namespace sees the host's count; the same connection there is no orphan of its own
    out["elsewhere"] = json.loads(subprocess.run([sys.executable, "-c", sys.argv[1], json.dumps(conn)],
                                                 check=True, capture_output=True, text=True).stdout)
    out["settled_with_orphan"] = settle_orphans([conn], 0.2)
finally:
    inj.reset(shook)  # the RST (seq isn + 1, in window) ends the orphan: nothing outlives the test
t = time.monotonic(); out["settled"] = settle_orphans([conn]); out["settle_took"] = time.monotonic() - t
out["after"] = still_closing([conn]) == []
print(json.dumps(out))
"""

ELSEWHERE = r"""
import ctypes, json, socket, sys, time
from harness.kernel_backend import settle_orphans
from netns.counters import read_sockstat
from netns.diag import Conn
assert ctypes.CDLL(None, use_errno=True).unshare(0x40000000) == 0
family, local, remote = json.loads(sys.argv[1])
t = time.monotonic(); settled = settle_orphans([Conn(family, tuple(local), tuple(remote))])
print(json.dumps({"host_count": read_sockstat()["TCP"]["orphan"], "settled": settled,
                  "took": time.monotonic() - t}))
"""


def test_orphans_are_waited_for_per_namespace_though_sockstat_counts_the_hosts():
    """sockstat's orphan count is host-wide (net/ipv4/proc.c:sockstat_seq_show): settle_orphans
    waits for an orphan of this namespace, and not at all for another namespace's."""
    r = subprocess.run([sys.executable, "-c", ORPHAN_CHILD, ELSEWHERE], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["kind"] == "SYNACK_ACKED"
    assert out["open"] and out["closing"] and out["after"]
    assert out["host_count"] >= 1 and out["elsewhere"]["host_count"] >= 1
    assert out["elsewhere"]["settled"] is True and out["elsewhere"]["took"] < 0.5
    assert out["settled_with_orphan"] is False  # it does wait for an orphan of its own
    assert out["settled"] is True and out["settle_took"] < 0.5
