"""sock_diag in the current namespace: end the TIME_WAIT sockets a scenario left behind.

SOCK_DESTROY on a TIME_WAIT socket reaches tcp_abort, which deschedules it
(inet_twsk_deschedule_put); the kernel needs CONFIG_INET_DIAG_DESTROY. The harness calls this
only inside namespaces it created, between scenarios, so a namespace is clean again without
being replaced.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_TIME_WAIT = 6
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
# struct inet_diag_msg's head and struct inet_diag_sockid (include/uapi/linux/inet_diag.h)
MSG_HEAD = struct.Struct("=BBBB")
SOCKID = struct.Struct("=2s2s16s16sI8s")


class DiagUnavailable(RuntimeError):
    """The kernel cannot destroy sockets (no CONFIG_INET_DIAG_DESTROY)."""


def _request(msg_type: int, flags: int, payload: bytes, seq: int) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), msg_type, flags, seq, 0) + payload


def _req(family: int, states: int, sockid: bytes | None = None) -> bytes:
    if sockid is None:
        sockid = SOCKID.pack(b"\0\0", b"\0\0", bytes(16), bytes(16), 0,
                             struct.pack("=II", INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))
    return struct.pack("=BBBxI", family, socket.IPPROTO_TCP, 0, states) + sockid


def _messages(sock: socket.socket) -> list[tuple[int, bytes]]:
    """Read netlink replies until NLMSG_DONE or an error/ack; (type, payload) pairs."""
    out: list[tuple[int, bytes]] = []
    while True:
        data = sock.recv(1 << 16)
        off = 0
        while off + 16 <= len(data):
            length, mtype, _flags, _seq, _pid = struct.unpack_from("=IHHII", data, off)
            payload = data[off + 16 : off + length]
            off += (length + 3) & ~3
            if mtype == NLMSG_DONE:
                return out
            out.append((mtype, payload))
            if mtype == NLMSG_ERROR:
                return out


def timewait_ids(sock: socket.socket, family: int) -> list[bytes]:
    """The inet_diag_sockid of every TIME_WAIT socket of one family."""
    sock.send(_request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP,
                       _req(family, 1 << TCP_TIME_WAIT), 1))
    ids = []
    for mtype, payload in _messages(sock):
        if mtype == SOCK_DIAG_BY_FAMILY:
            ids.append(payload[MSG_HEAD.size : MSG_HEAD.size + SOCKID.size])
    return ids


def destroy_timewait() -> int:
    """SOCK_DESTROY every TIME_WAIT socket of this namespace; how many went."""
    n = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        for family in (socket.AF_INET, socket.AF_INET6):
            for sockid in timewait_ids(sock, family):
                sock.send(_request(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK,
                                   _req(family, 1 << TCP_TIME_WAIT, sockid), 2))
                for mtype, payload in _messages(sock):
                    if mtype == NLMSG_ERROR:
                        err = -struct.unpack_from("=i", payload)[0]
                        if err == errno.EOPNOTSUPP:
                            raise DiagUnavailable("SOCK_DESTROY: kernel without "
                                                  "CONFIG_INET_DIAG_DESTROY")
                        if err == 0:
                            n += 1
    return n


def describe(sockid: bytes, family: int) -> str:
    """'10.0.0.1:5000 > 10.0.0.2:8080' for an inet_diag_sockid (diagnostics)."""
    sport, dport, src, dst, _, _ = SOCKID.unpack(sockid)
    size = 4 if family == socket.AF_INET else 16
    a = ipaddress.ip_address(src[:size])
    b = ipaddress.ip_address(dst[:size])
    return f"{a}:{int.from_bytes(sport, 'big')} > {b}:{int.from_bytes(dport, 'big')}"
