"""Injected handshakes and the listener's queues: which listener a SYN reaches, what
tcp_conn_request makes of it, the ACK that completes it, the harness's sweep, and what closing
a listener does to its connections (reset, or tcp_migrate_req): the layer over connections.py,
under sockets.py. net/ipv4/tcp_ipv4.c tcp_v4_rcv, tcp_input.c tcp_conn_request, tcp_minisocks.c
tcp_check_req, syncookies.c cookie_v4_check, inet_connection_sock.c inet_csk_listen_stop,
net/core/sock_reuseport.c.
"""

from __future__ import annotations

from model.connect import ConnKey, conn_key
from model.ebpf import Attached
from model.kernel.connections import Connections
from model.lookup import Syn
from model.outcome import Outcome
from model.queues import (
    SynFate,
    sk_acceptq_is_full,
    tcp_conn_request,
    tcp_synq_no_recent_overflow,
    tcp_synq_overflow,
)
from model.reuseport import reuseport_detach_sock, reuseport_migrate_sock
from model.sock import Sock, TcpState


class Handshakes(Connections):
    """The injected-handshake and queue half of the model."""

    def _migrate_req(self) -> bool:
        """net.ipv4.tcp_migrate_req, where the kernel reads it (profile migrate_req: 5.14+;
        Debian's 5.10 has the sysctl but no reader)."""
        return bool(self.sysctls.tcp_migrate_req) and self.profile.migrate_req

    def _listen_stop(self, sk: Sock) -> str:
        """tcp_set_state(TCP_CLOSE) -> inet_unhash (reuseport_stop_listen_sock), then
        inet_csk_listen_stop: each queued child migrates to another listener of the group
        (reuseport_migrate_sock, with tcp_migrate_req) or is reset. Request sockets wait for
        their ACK in ehash, still the closed listener's (inet_csk_listen_stop leaves them):
        tcp_v4_rcv then migrates them the same way or, without migration, drops them and looks
        up again; a shutdown() listener that listens again first takes them itself (tcp_v4_rcv
        tests only req->rsk_listener's state)."""
        migrate = self._migrate_req()
        self.listens.inet_unhash(sk, migrate)
        kids = list(sk.accept_queue)
        sk.accept_queue.clear()
        moved: dict[str, int] = {}
        reset = 0
        for child in kids:
            nsk = self._migrate_target(sk, child.local_ip(), child.num, child.daddr, child.dport)
            if nsk is not None:
                nsk.accept_queue.append(child)  # inet_csk_reqsk_queue_add: no backlog check
                child.parent = nsk
                moved[nsk.name] = moved.get(nsk.name, 0) + 1
            else:
                self._listen_stop_child(child)
                reset += 1
        parts = [f"reset {reset} queued connection(s)"] if reset else []
        parts += [f"migrated {n} to {name}" for name, n in moved.items()]
        return ("; " + ", ".join(parts)) if parts else ""

    def _migrate_target(self, sk: Sock, laddr, lport: int, faddr, fport: int) -> Sock | None:
        """reuseport_migrate_sock for a connection of closed listener sk; None: no migration."""
        migrate = self._migrate_req()
        group = sk.reuseport_cb
        if group is None:
            return None
        # a BPF_SK_REUSEPORT_SELECT_OR_MIGRATE program migrates without tcp_migrate_req
        if not migrate and not (isinstance(group.prog, Attached) and group.prog.migrates):
            return None
        h = self.lookup.ehash_of(laddr, lport, faddr, fport)
        self.hash_dependent = True  # by the namespace's hash, or a guess for it
        nsk, _ = reuseport_migrate_sock(sk, h, self.cpu, migrate, pick=self._rng.choice)
        if nsk is None or nsk.state != TcpState.LISTEN:
            return None
        return nsk

    def _syn_listener(self, syn: Syn, key: ConnKey, choice: str | None
                      ) -> tuple[Sock | None, str, tuple[Sock, ...], bool, Outcome | None]:
        """tcp_v4_rcv / tcp_v6_rcv up to the listener: an established socket of the tuple first
        (a SYN on it gets a challenge ACK: DROP), then the listener lookup, following the
        kernel's pick where the model can only name the group."""
        if not self.host.is_local(syn.dst):
            return None, "", (), False, Outcome("DROP", f"ip_route_input: {syn.dst} is not a local address")
        owner = self.ehash.get(key)
        if owner is not None and owner.state != TcpState.SYN_RECV:
            # __inet_lookup_established; tcp_validate_incoming answers a SYN with a challenge ACK
            where = f"queued on {owner.parent.name}" if owner.parent else owner.state.value
            return None, "", (), False, Outcome(
                "DROP", f"__inet_lookup_established: {syn.src}:{syn.sport} > {syn.dst}:{syn.dport} "
                f"is a connection {where}; tcp_validate_incoming answers a SYN with a challenge ACK")
        found = self.lookup.listener(syn)
        sk, reason, one_of = found.sk, found.reason, found.one_of
        if one_of:
            sk, reason = self._follow(key, one_of, choice, reason)
        if sk is None:
            return None, reason, one_of, found.hashed, Outcome("RST", f"{reason}: tcp_v4_send_reset")
        if one_of or found.hashed:
            self.hash_dependent = True
        return sk, reason, one_of, found.hashed, None

    def _conn_request(self, sk: Sock, reason: str) -> tuple[SynFate | None, str]:
        try:
            d = tcp_conn_request(sk, self.sysctls)
        except ValueError as e:
            return None, f"{reason}; {e}"
        return d.fate, f"{reason}; {d.reason}"

    def syn(self, syn: Syn, choice: str | None = None) -> Outcome:
        """A SYN, and the ACK completing its handshake: the listener's tcp_conn_request makes a
        request socket or a cookie (or drops the SYN); the ACK then makes the child."""
        key = conn_key(syn.dst, syn.dport, syn.src, syn.sport)
        sk, reason, one_of, hashed, early = self._syn_listener(syn, key, choice)
        if early is not None:
            return early
        assert sk is not None
        fate, reason = self._conn_request(sk, reason)
        if fate is None:
            return Outcome("UNKNOWN", reason)
        if fate == SynFate.DROP:
            return Outcome("DROP", reason)
        if fate == SynFate.COOKIE:
            tcp_synq_overflow(sk)  # cookie_init_sequence
        self._new_child(sk, syn.dst, syn.src, syn.sport, None, key)
        self.injected += 1
        self.unswept += 1
        # A pick by hash depends on the namespace's secret: exact against this kernel, but no
        # value to record for another namespace (random=True keeps it out of expectations).
        # Where the model could only name the group (one_of), the check is by property: a
        # member of the group, and for a tuple seen before, the same socket.
        return Outcome(sk.name, reason, one_of=tuple(s.name for s in one_of) if one_of else (),
                       random=bool(one_of) or hashed)

    def syn_only(self, syn: Syn, choice: str | None = None) -> Outcome:
        """A SYN and nothing more: SYNACK (a request socket waits in the SYN queue), COOKIE (a
        SYN cookie, no request socket), RST or DROP."""
        key = conn_key(syn.dst, syn.dport, syn.src, syn.sport)
        sk, reason, one_of, hashed, early = self._syn_listener(syn, key, choice)
        if early is not None:
            self.half_open[key] = early.value
            return Outcome(early.value, early.reason, random=self.hash_dependent)
        assert sk is not None
        fate, reason = self._conn_request(sk, reason)
        if fate is None:
            return Outcome("UNKNOWN", reason)
        self.half_open[key] = fate.value
        if fate == SynFate.COOKIE:
            tcp_synq_overflow(sk)  # cookie_init_sequence
        if fate == SynFate.REQUEST:
            req = Sock(name=f"{sk.name}~req", family=sk.family, state=TcpState.SYN_RECV, parent=sk,
                       num=sk.num, daddr=syn.src, dport=syn.sport, ehash_key=key)
            sk.syn_queue.append(req)
            self.ehash[key] = req  # inet_ehash_insert (reqsk_queue_hash_req)
        return Outcome(fate.value, f"{reason} on {sk.name}", random=self.hash_dependent)

    def ack(self, syn: Syn, choice: str | None = None) -> Outcome:
        """The ACK completing a handshake syn_only left open: a request socket's child
        (tcp_check_req -> tcp_v4_syn_recv_sock), or a cookie's (cookie_v4_check ->
        tcp_get_cookie_sock); a full accept queue drops it (or, for a request socket with
        tcp_abort_on_overflow, resets it). After a RST the flow is over: the harness sends
        no further ACK for it."""
        key = conn_key(syn.dst, syn.dport, syn.src, syn.sport)
        out = self._ack(syn, key, choice)
        if out.value == "RST":
            self.half_open.pop(key, None)
        return out

    def _ack(self, syn: Syn, key: ConnKey, choice: str | None) -> Outcome:
        sent = self.half_open.get(key)
        if sent not in (SynFate.REQUEST.value, SynFate.COOKIE.value):
            return Outcome("DROP", "no SYN-ACK came back for this tuple: the harness sends no ACK")
        req = self.ehash.get(key)
        if req is not None and req.state == TcpState.SYN_RECV:
            listener = req.parent
            assert listener is not None
            if listener.state != TcpState.LISTEN:
                # tcp_v4_rcv: the request's listener is gone: reuseport_migrate_sock picks
                # another by the request's hash (tcp_migrate_req), or the request is dropped.
                # The request stays its old listener's (req->rsk_listener) until a child takes
                # it (inet_csk_complete_hashdance clones it onto the new one)
                nsk = self._migrate_target(listener, syn.dst, syn.dport, syn.src, syn.sport)
                if nsk is not None:
                    listener = nsk
            if listener.state == TcpState.LISTEN:
                if sk_acceptq_is_full(listener):
                    if self.sysctls.tcp_abort_on_overflow:  # listen_overflow -> embryonic_reset
                        # inet_csk_reqsk_queue_drop(sk, req): sk is the listener the ACK met, so
                        # a migrated request is counted off the target's qlen, not its own's
                        if listener is not req.parent and req.parent is not None:
                            req.parent.qlen_drift += 1
                            listener.qlen_drift -= 1
                        self._drop_req(req)
                        del self.half_open[key]
                        return Outcome("RST", f"tcp_check_req: {listener.name}'s accept queue is full "
                                       "and tcp_abort_on_overflow=1: the request is reset",
                                       random=self.hash_dependent)
                    return Outcome("DROP", f"tcp_check_req: {listener.name}'s accept queue is full: "
                                   "the ACK is dropped (inet_rsk(req)->acked = 1)", random=self.hash_dependent)
                self._drop_req(req)
                del self.half_open[key]
                self._new_child(listener, syn.dst, syn.src, syn.sport, None, key)
                self.injected += 1
                return Outcome(listener.name, f"tcp_check_req -> tcp_v4_syn_recv_sock: a child "
                               f"queued on {listener.name}", random=self.hash_dependent)
            self._drop_req(req)  # tcp_v4_rcv: the listener is gone: drop the request, look up
        sk, reason, one_of, hashed, early = self._syn_listener(syn, key, choice)
        if early is not None:
            return Outcome(early.value, early.reason, random=self.hash_dependent)
        assert sk is not None
        # cookie_v4_check: no cookies now, or no cookie was sent: the listener answers a RST
        if not self.sysctls.tcp_syncookies or sent != SynFate.COOKIE.value:
            return Outcome("RST", f"{reason}; cookie_v4_check: no valid cookie: tcp_v4_send_reset",
                           random=self.hash_dependent)
        if tcp_synq_no_recent_overflow(sk):
            # the stamp is 0 (no cookie sent since sk, or its group, began): time_between32(now,
            # 0 - HZ, 0 + TCP_SYNCOOKIE_VALID) still holds while the 32-bit jiffies are within
            # [-HZ, 120 * HZ], from 299 to 420 s after boot (INITIAL_JIFFIES is -300 * HZ): a
            # kernel's clock the model does not have, so it follows the kernel's outcome
            self.hash_dependent = True  # what follows depends on the kernel's clock: not recorded
            whose = f"{sk.name}{' (its group)' if sk.reuseport and sk.reuseport_cb else ''}"
            reason = (f"{reason}; cookie_v4_check: tcp_synq_no_recent_overflow: {whose} holds no "
                      "overflow stamp (none sent since it listened, or shutdown cleared it)")
            if choice != sk.name:
                return Outcome("RST", f"{reason}, so no cookie is checked: tcp_v4_send_reset (a "
                               "stamp of 0 reads as recent only 299-420 s after boot)",
                               one_of=("RST", sk.name), random=True)
            reason += ", read as recent: the kernel's jiffies are within 120 s after their 32-bit wrap"
        if sk_acceptq_is_full(sk):
            return Outcome("DROP", f"{reason}; cookie_v4_check -> tcp_v4_syn_recv_sock: the accept "
                           "queue is full: dropped", random=self.hash_dependent)
        del self.half_open[key]
        self._new_child(sk, syn.dst, syn.src, syn.sport, None, key)
        self.injected += 1
        return Outcome(sk.name, f"{reason}; cookie_v4_check: the cookie makes a child on {sk.name}",
                       one_of=tuple(s.name for s in one_of), random=bool(one_of) or hashed or self.hash_dependent)

    def _drop_req(self, req: Sock) -> None:
        """inet_csk_reqsk_queue_drop: out of the SYN queue and ehash; a closed listener whose
        last request goes is freed, and leaves its group's closed section."""
        parent = req.parent
        if parent is not None and req in parent.syn_queue:
            parent.syn_queue.remove(req)
            if parent.fd_closed and not parent.syn_queue and parent.reuseport_cb is not None:
                reuseport_detach_sock(parent)
        if req.ehash_key is not None and self.ehash.get(req.ehash_key) is req:
            del self.ehash[req.ehash_key]

    def sweep(self) -> int:
        """accept() every child of an injected SYN and abort it (SO_LINGER {1, 0}: a RST, no
        TIME_WAIT), as the harness does between batches, to learn where each syn step's
        connection went; without such steps pending (ack steps are settled at once) it does
        nothing, so queues survive close and shutdown."""
        if not self.unswept:  # nothing to learn: the common case, before every setup step
            return 0
        swept: list[Sock] = []
        for sk in self.socks:
            if not sk.accept_queue or sk.fd_closed:
                continue
            kept = []
            for child in sk.accept_queue:
                if not child.injected:
                    kept.append(child)
                    continue
                swept.append(child)
                self._unhash_conn(child)
                child.state = TcpState.CLOSE
            sk.accept_queue[:] = kept
        self.binds.put_ports(swept, self.profile.connect_bind_reset)  # each child's inet_put_port
        self.injected = 0
        self.unswept = 0
        return len(swept)
