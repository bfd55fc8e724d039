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
