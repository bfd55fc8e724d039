"""The listener's two queues: what tcp_conn_request does with a SYN (a request socket, a SYN
cookie, or a drop) and what an ACK finds (tcp_check_req / cookie_v4_check ->
tcp_v4_syn_recv_sock). net/ipv4/tcp_input.c, tcp_minisocks.c, syncookies.c,
include/net/inet_connection_sock.h, include/net/sock.h.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from model.sock import Sock
from model.sysctl import Sysctls

MIN_MAX_SYN_BACKLOG = 128  # tcp_sk_init: max(128U, ehash entries / 128)


class SynFate(enum.Enum):
    """What tcp_conn_request makes of a SYN; the value is what the client sees."""

    REQUEST = "SYNACK"  # a request socket in the SYN queue, and a SYN-ACK
    COOKIE = "COOKIE"  # a SYN-ACK whose ISN is a cookie, no request socket
    DROP = "DROP"  # nothing comes back


@dataclass(frozen=True)
class Decision:
    fate: SynFate
    reason: str


def sk_acceptq_is_full(sk: Sock) -> bool:
    """sk_acceptq_is_full: sk_ack_backlog > sk_max_ack_backlog (so it holds backlog + 1)."""
    return len(sk.accept_queue) > sk.max_ack_backlog


def inet_csk_reqsk_queue_is_full(sk: Sock) -> bool:
    """inet_csk_reqsk_queue_is_full: qlen > sk_max_ack_backlog, the int qlen compared with the
    u32 backlog (include/net/inet_connection_sock.h), so a qlen below 0 reads as full."""
    return (sk.syn_qlen & 0xFFFFFFFF) > sk.max_ack_backlog


def tcp_synq_overflow(sk: Sock) -> None:
    """tcp_synq_overflow (include/net/tcp.h), from cookie_init_sequence as a cookie is sent: the
    stamp goes to the reuseport group (synq_overflow_ts) if sk has SO_REUSEPORT and a group,
    else to the listener (rx_opt.ts_recent_stamp)."""
    if sk.reuseport and sk.reuseport_cb is not None:
        sk.reuseport_cb.synq_overflow = True
    else:
        sk.synq_overflow = True


def tcp_synq_no_recent_overflow(sk: Sock) -> bool:
    """tcp_synq_no_recent_overflow (include/net/tcp.h): cookie_v4_check / cookie_v6_check test
    it first and, true, check no cookie at all (the ACK meets the listener: a RST). Read where
    tcp_synq_overflow writes, so a cookie another listener sent is no cookie to this one, and
    tcp_disconnect (shutdown) clears a listener's own stamp (memset(&tp->rx_opt, 0, ...)). The
    model has no clock: a stamp is recent once set (TCP_SYNCOOKIE_VALID is 2 minutes), and one
    of 0 is not, though the kernel reads 0 as recent for 2 minutes after its 32-bit jiffies
    wrap, 5 minutes after boot; the caller leaves that case to the kernel."""
    if sk.reuseport and sk.reuseport_cb is not None:
        return not sk.reuseport_cb.synq_overflow
    return not sk.synq_overflow


def tcp_conn_request(sk: Sock, sysctls: Sysctls) -> Decision:
    """tcp_conn_request for a SYN that matched no TIME_WAIT socket (isn == 0), in its order."""
    syncookies = sysctls.tcp_syncookies
    want_cookie = False
    if syncookies == 2 or inet_csk_reqsk_queue_is_full(sk):
        # tcp_syn_flood_action: cookies if net.ipv4.tcp_syncookies, else "Dropping request"
        want_cookie = bool(syncookies)
        why = ("tcp_syncookies=2" if syncookies == 2 else "the SYN queue is full (qlen > backlog)" if sk.syn_qlen >= 0
               else f"the SYN queue reads as full (qlen {sk.syn_qlen} compared as a u32 with the backlog)")
        if not want_cookie:
            return Decision(SynFate.DROP, f"tcp_conn_request: {why} and tcp_syncookies=0 ({_queues(sk)})")
    if sk_acceptq_is_full(sk):
        return Decision(SynFate.DROP, f"tcp_conn_request: the accept queue is full ({_queues(sk)})")
    if want_cookie:
        return Decision(SynFate.COOKIE, f"tcp_conn_request: {why}: a SYN cookie ({_queues(sk)})")
    if not syncookies:
        # "Without syncookies last quarter of backlog is filled with destinations, proven to be
        # alive": an injected client has no tcp_metrics entry, so it is never proven
        limit = sysctls.tcp_max_syn_backlog
        known = limit if limit is not None else MIN_MAX_SYN_BACKLOG
        if known - sk.syn_qlen < known >> 2:
            if limit is None:
                raise ValueError("tcp_max_syn_backlog decides this SYN: set it with @sysctl "
                                 "(its default depends on the machine's memory)")
            return Decision(SynFate.DROP, f"tcp_conn_request: tcp_max_syn_backlog {limit} - qlen "
                            f"{sk.syn_qlen} < {limit >> 2} and the peer is not proven ({_queues(sk)})")
    return Decision(SynFate.REQUEST, _REQUEST)


_REQUEST = "tcp_conn_request: a request socket (room in both queues)"


def _queues(sk: Sock) -> str:
    return f"SYN queue {sk.syn_qlen}, accept queue {len(sk.accept_queue)}, backlog {sk.max_ack_backlog}"
