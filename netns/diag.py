"""sock_diag in the current namespace: the TCP sockets in some states (listeners with their
accept-queue length, request sockets), closed connections still finishing their close, and the end of the TIME_WAIT sockets a scenario left.

SOCK_DESTROY on a TIME_WAIT socket reaches tcp_abort, which deschedules it
(inet_twsk_deschedule_put); the kernel needs CONFIG_INET_DIAG_DESTROY. The harness calls this
only inside namespaces it created, between scenarios, so a namespace is clean again without
being replaced. Plain netlink (include/uapi/linux/inet_diag.h), no library.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
# what follows the sockid: idiag_expires, idiag_rqueue, idiag_wqueue, idiag_uid, idiag_inode
MSG_TAIL = struct.Struct("=IIIII")
TCPF_SYN_RECV = 1 << 3  # request sockets are dumped in this state (inet_req_diag_fill)
TCPF_LISTEN = 1 << 10
# the states a closed connection finishes its close in (tcp_close: FIN_WAIT1, or LAST_ACK from
# CLOSE_WAIT; then FIN_WAIT2, CLOSING)
CLOSING_STATES = frozenset({4, 5, 9, 11})
TIMEWAIT_TIMER = 3  # idiag_timer of a TIME_WAIT socket, whose idiag_state is its substate
# (inet_diag.c:inet_twsk_diag_fill: a FIN_WAIT2 substate reads as FIN_WAIT2)
# a netlink reply that never comes is an error (TimeoutError, an OSError), never a hang
REPLY_TIMEOUT = 5.0


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


@dataclass(frozen=True)
class DiagSock:
    """One struct inet_diag_msg: a TCP socket as sock_diag reports it."""

    family: int
    state: int
    src: str  # the local address and port
    sport: int
    dst: str  # the peer's
    dport: int
    rqueue: int  # a listener's: its accept queue's length (inet_diag_msg_common_fill)
    inode: int


def _address(raw: bytes, family: int) -> str:
    return socket.inet_ntop(family, raw[:4] if family == socket.AF_INET else raw)


def _diag_sock(payload: bytes) -> DiagSock:
    family, state, _timer, _retrans = MSG_HEAD.unpack_from(payload)
    sport, dport, src, dst, _if, _cookie = SOCKID.unpack_from(payload, MSG_HEAD.size)
    _expires, rqueue, _wqueue, _uid, inode = MSG_TAIL.unpack_from(payload, MSG_HEAD.size + SOCKID.size)
    return DiagSock(family, state, _address(src, family), int.from_bytes(sport, "big"),
                    _address(dst, family), int.from_bytes(dport, "big"), rqueue, inode)


def tcp_sockets(states: int) -> list[DiagSock]:
    """Every TCP socket of this namespace (both families) in `states`, a TCPF_* mask."""
    out: list[DiagSock] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(REPLY_TIMEOUT)
        for family in (socket.AF_INET, socket.AF_INET6):
            sock.send(_request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, _req(family, states), 1))
            for mtype, payload in _messages(sock):
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    raise OSError(err, f"sock_diag dump: {os.strerror(err)}")
                if mtype == SOCK_DIAG_BY_FAMILY:
                    out.append(_diag_sock(payload))
    return out


class Conn(NamedTuple):
    """A connection by its family and both ends, as getsockname() and getpeername() give them."""

    family: int
    local: tuple[str, int]
    remote: tuple[str, int]


def _sockid(conn: Conn) -> bytes:
    def raw(addr: str) -> bytes:
        return socket.inet_pton(conn.family, addr).ljust(16, b"\0")

    return SOCKID.pack(conn.local[1].to_bytes(2, "big"), conn.remote[1].to_bytes(2, "big"),
                       raw(conn.local[0]), raw(conn.remote[0]), 0,
                       struct.pack("=II", INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE))


def still_closing(conns: Sequence[Conn]) -> list[Conn]:
    """Those of `conns` whose socket is still finishing its close (an orphan), each found by one
    exact lookup (inet_diag.c:inet_diag_find_one_icsk, a hash lookup, not a walk of the table);
    one that is gone (ENOENT) or a TIME_WAIT socket has finished."""
    left = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(REPLY_TIMEOUT)
        for conn in conns:
            sock.send(_request(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_ACK,
                               _req(conn.family, 0xFFFFFFFF, _sockid(conn)), 3))
            for mtype, payload in _messages(sock):
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err not in (0, errno.ENOENT):
                        raise OSError(err, f"sock_diag lookup of {conn}: {os.strerror(err)}")
                elif mtype == SOCK_DIAG_BY_FAMILY:
                    _family, state, timer, _retrans = MSG_HEAD.unpack_from(payload)
                    if state in CLOSING_STATES and timer != TIMEWAIT_TIMER:
                        left.append(conn)
    return left


def destroy_timewait() -> int:
    """SOCK_DESTROY every TIME_WAIT socket of this namespace; how many went."""
    n = 0
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
        sock.settimeout(REPLY_TIMEOUT)
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
