"""Connections inside the namespace: connect(), accept(), the close of a connection and its
TIME_WAIT socket, and the children listeners make: the layer over state.py, under handshakes.py.
net/ipv4/tcp_ipv4.c tcp_v4_connect, net/ipv6/tcp_ipv6.c tcp_v6_connect, net/ipv4/inet_hashtables.c,
net/ipv4/tcp.c __tcp_close, net/ipv4/tcp_minisocks.c tcp_time_wait, inet_timewait_sock.c.
"""

from __future__ import annotations

import ipaddress
from socket import AF_INET, AF_INET6

from model.addr import SockAddr
from model.connect import (
    LOOPBACK_IFINDEX,
    ConnKey,
    IPAddr,
    check_established,
    conn_key,
    key_of,
)
from model.host import RouteType
from model.kernel.state import KernelState
from model.lookup import Syn
from model.outcome import Outcome, PortChoice
from model.sock import (
    IN6ADDR_ANY,
    LOOPBACK4_IPV6,
    SOCK_BINDADDR_LOCK,
    SOCK_BINDPORT_LOCK,
    SOCK_CONNECT_BIND,
    AddrType,
    Sock,
    TcpState,
    ipv6_addr_type,
    v4mapped,
)


class Connections(KernelState):
    """The connection half of the model's system calls."""

    def _touch(self, sk: Sock) -> None:
        """sk's state or flags changed: the port searches recheck its port (BindTables.touch)."""
        if sk.bind_hash is not None:
            self.binds.touch(sk.bind_hash.port)

    def _put_port(self, sk: Sock) -> None:
        """inet_put_port; SOCK_CONNECT_BIND is cleared with the port (__inet_put_port)."""
        self.binds.put_port(sk, self.profile.connect_bind_reset)
        sk.userlocks &= ~SOCK_CONNECT_BIND

    def _unhash_conn(self, sk: Sock) -> None:
        """inet_unhash of a connection: out of ehash and the inuse count."""
        key = sk.ehash_key
        if key is not None and self.ehash.get(key) is sk:
            del self.ehash[key]
            self.listens.inuse[sk.family] -= 1
        sk.ehash_key = None

    def _tcp_done(self, sk: Sock) -> None:
        """tcp_done -> tcp_set_state(TCP_CLOSE): unhashed, and the port released unless bind()
        locked it (SOCK_BINDPORT_LOCK)."""
        self._unhash_conn(sk)
        sk.state = TcpState.CLOSE
        self._touch(sk)
        if sk.bind_hash is not None and not sk.userlocks & SOCK_BINDPORT_LOCK:
            self._put_port(sk)

    def _receive_rst(self, sk: Sock) -> None:
        """A RST reaching sk: tcp_reset -> tcp_done (a shut-down socket too); a TIME_WAIT
        socket is killed (tcp_timewait_state_process, net.ipv4.tcp_rfc1337 = 0)."""
        if sk.state == TcpState.TIME_WAIT:
            self._tw_kill(sk)
        elif sk.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT, TcpState.FIN_WAIT1, TcpState.FIN_WAIT2):
            self._tcp_done(sk)

    def _listen_stop_child(self, child: Sock) -> None:
        """inet_csk_listen_stop -> inet_child_forget -> tcp_disconnect: a queued child is
        aborted, its peer gets a RST (tcp_need_reset), and the child's port is released."""
        if child.injected:
            self.injected -= 1
        child.parent = None
        self._abort(child)
        child.state = TcpState.CLOSE
        if child.bind_hash is not None:
            self._put_port(child)

    def _abort(self, sk: Sock) -> None:
        """tcp_disconnect of a connection (a zero-linger close): its peer gets a RST, it is
        unhashed and closed; the port goes with the socket (tcp_v4_destroy_sock)."""
        if sk.peer is not None:
            self._receive_rst(sk.peer)
            sk.peer.peer = None
            sk.peer = None
        self._unhash_conn(sk)

    def _active_close(self, sk: Sock) -> str:
        """tcp_close on ESTABLISHED: FIN, the peer ACKs (loopback delivers at once), and the
        orphan in FIN_WAIT2 becomes a TIME_WAIT socket (tcp_close: tcp_fin_time <=
        TCP_TIMEWAIT_LEN -> tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)). The peer is CLOSE_WAIT.
        On FIN_WAIT2 (shut down, ACKed) tcp_close_state sends nothing more: the same end."""
        peer = sk.peer
        if peer is sk:  # connected to itself: its own FIN is the peer's (CLOSING -> TIME_WAIT)
            self._time_wait(sk, TcpState.TIME_WAIT)
            return "; connected to itself: simultaneous close, TIME_WAIT"
        tw = self._time_wait(sk, TcpState.FIN_WAIT2)
        if peer is not None:
            peer.state = TcpState.CLOSE_WAIT
            peer.peer = tw
            self._touch(peer)
        return f"; now {tw.name} (TIME_WAIT, substate FIN_WAIT2), peer CLOSE_WAIT"

    def _passive_close(self, sk: Sock) -> str:
        """tcp_close on CLOSE_WAIT: the FIN (_fin_to_peer), the peer ACKs, and sk goes
        LAST_ACK -> CLOSE."""
        what = self._fin_to_peer(sk)
        self._unhash_conn(sk)
        return what

    def _fin_to_peer(self, sk: Sock) -> str:
        """sk's FIN (tcp_close_state: CLOSE_WAIT -> LAST_ACK) reaching the peer that closed or
        shut down first: its TIME_WAIT socket moves to the TIME_WAIT substate and ACKs
        (tcp_timewait_state_process); a shut-down peer, in FIN_WAIT2 and not orphaned,
        enters TIME_WAIT and is done (tcp_input.c:tcp_fin: tcp_time_wait(sk, TCP_TIME_WAIT, 0))."""
        peer = sk.peer
        if peer is not None and peer.state == TcpState.TIME_WAIT:
            peer.tw_substate = TcpState.TIME_WAIT
            peer.peer = None
            self._touch(peer)  # tcp_twsk_unique reads the substate
            return "; the peer's TIME_WAIT socket ACKed our FIN"
        if peer is not None and peer.state == TcpState.FIN_WAIT2:
            tw = self._time_wait(peer, TcpState.TIME_WAIT, orphan=False)
            peer.peer = None
            return f"; the shut-down peer {peer.name} ACKed our FIN and is TIME_WAIT ({tw.name}), its socket closed"
        return ""

    def _shutdown_connection(self, sk: Sock) -> str:
        """tcp_shutdown (SEND_SHUTDOWN of SHUT_RDWR): tcp_close_state and its FIN
        (tcp_send_fin), answered at once over loopback; the socket keeps its descriptor."""
        peer = sk.peer
        if sk.state == TcpState.CLOSE_WAIT:
            # LAST_ACK; the peer's ACK: tcp_rcv_state_process TCP_LAST_ACK -> tcp_done
            what = self._fin_to_peer(sk)
            self._tcp_done(sk)
            sk.peer = None
            return f"LAST_ACK, then CLOSE{what}"
        if peer is sk:
            # its own FIN: FIN_WAIT1 -> CLOSING (tcp_fin), then the ACK of it: TCP_CLOSING ->
            # tcp_time_wait(sk, TCP_TIME_WAIT, 0), and tcp_done
            self._time_wait(sk, TcpState.TIME_WAIT, orphan=False)
            sk.peer = None
            return "connected to itself: simultaneous close, TIME_WAIT, its socket closed"
        if peer is None:  # an injected client: the FIN goes out through the TUN, unanswered
            sk.state = TcpState.FIN_WAIT1
            self._touch(sk)
            return "FIN_WAIT1 (the injected client does not answer the FIN)"
        sk.state = TcpState.FIN_WAIT2  # tcp_rcv_state_process TCP_FIN_WAIT1: the ACK
        peer.state = TcpState.CLOSE_WAIT  # tcp_fin
        self._touch(sk)
        self._touch(peer)
        return f"FIN_WAIT2 (the peer ACKed), peer {peer.name} CLOSE_WAIT"

    def _time_wait(self, sk: Sock, substate: TcpState, orphan: bool = True) -> Sock:
        """tcp_time_wait -> inet_twsk_alloc + inet_twsk_hashdance_schedule: a TIME_WAIT socket
        takes sk's place in ehash and joins sk's bind2 bucket (sk_add_bind_node); sk leaves
        both: an orphan at once (tcp_v4_destroy_sock -> inet_put_port), a socket still open
        through tcp_done, which keeps a port bind() locked (tcp_set_state: SOCK_BINDPORT_LOCK)."""
        tw = Sock(name=sk.name, family=sk.family, uid=sk.uid, reuse=sk.reuse,
                  reuseport=sk.reuseport, ipv6only=sk.ipv6only, state=TcpState.TIME_WAIT,
                  num=sk.num, rcv_saddr=sk.rcv_saddr, v6_rcv_saddr=sk.v6_rcv_saddr,
                  bound_dev_if=sk.bound_dev_if, daddr=sk.daddr, dport=sk.dport,
                  tw_substate=substate, ts_recent_stamp=sk.ts_recent_stamp,
                  userlocks=sk.userlocks & SOCK_CONNECT_BIND)  # tw_connect_bind
        key = key_of(sk)
        self._unhash_conn(sk)
        self.ehash[key] = tw
        tw.ehash_key = key
        self.tw_count += 1
        tb, tb2 = sk.bind_hash, sk.bind2_hash
        assert tb is not None and tb2 is not None
        tw.bind_hash, tw.bind2_hash = tb, tb2
        self.binds.add_owner(tb2, tw)
        if orphan or not sk.userlocks & SOCK_BINDPORT_LOCK:
            self._put_port(sk)
        sk.state = TcpState.CLOSE
        self._touch(sk)
        return tw

    def _tw_kill(self, tw: Sock) -> None:
        """inet_twsk_kill: out of ehash and of its bind buckets (inet_twsk_bind_unhash)."""
        if self.ehash.get(key_of(tw)) is tw:
            del self.ehash[key_of(tw)]
        tw.ehash_key = None
        self.tw_count -= 1
        self.binds.put_port(tw, self.profile.connect_bind_reset)
        tw.state = TcpState.CLOSE

    def _new_child(self, listener: Sock, local: object, remote: object, rport: int,
                   peer: Sock | None, key: ConnKey | None = None) -> Sock:
        """tcp_v4_syn_recv_sock / tcp_v6_syn_recv_sock: the child is a clone of the listener
        (sk_clone_lock: flags, uid, device) with the connection's addresses; it inherits the
        listener's port into the bind2 bucket of its own address (__inet_inherit_port) and is
        hashed into ehash (inet_ehash_nolisten), counting in inuse as the listener's family."""
        child = listener.clone_for_child()
        child.daddr, child.dport, child.peer, child.parent = remote, rport, peer, listener
        child.ts_recent_stamp = bool(self.sysctls.tcp_timestamps)
        child.injected = peer is None
        if isinstance(local, ipaddress.IPv4Address):
            child.rcv_saddr = int(local)
            child.v6_rcv_saddr = v4mapped(int(local))
        else:
            child.v6_rcv_saddr = local
            child.rcv_saddr = LOOPBACK4_IPV6
        tb = listener.bind_hash
        assert tb is not None
        tb2 = self.binds.bucket2(tb.port, tb.l3mdev, child) or self.binds.create2(tb, child)
        self.binds.bind_hash(child, tb, tb2, tb.port)
        child.ehash_key = key or key_of(child)
        self.ehash[child.ehash_key] = child
        self.listens.inuse[listener.family] += 1
        listener.accept_queue.append(child)
        return child

    def connect(self, fd: int, addr: SockAddr, choice: int | None = None) -> Outcome:
        """connect(): __inet_stream_connect -> tcp_v4_connect / tcp_v6_connect (the route's
        source, then inet_hash_connect's port); the SYN then meets the destination's listener
        through loopback (tcp_v4_rcv), which answers at once."""
        self.search_random = self.search_may_fail = False
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        # __inet_stream_connect: SS_CONNECTED, or SS_UNCONNECTED with sk_state != TCP_CLOSE
        if sk.connected or sk.state != TcpState.CLOSE:
            why = "already connected (SS_CONNECTED)" if sk.connected else f"{sk.state.value}"
            return Outcome("EISCONN", f"__inet_stream_connect: {sk.name} is {why}")
        if addr.family != sk.family:
            return Outcome("EAFNOSUPPORT", "tcp_v4_connect / tcp_v6_connect: family mismatch")
        route = self._connect_route(sk, addr.host)
        if isinstance(route, Outcome):
            return route
        fn, saddr, daddr = route
        lost = isinstance(saddr, ipaddress.IPv6Address) and not self.host.ipv6_chk_addr(saddr)
        sk.daddr, sk.dport = daddr, addr.port
        sk.state = TcpState.SYN_SENT
        self._touch(sk)
        hashed = self._hash_connect(sk, fn, saddr, daddr, addr.port, choice)
        if isinstance(hashed, Outcome):
            return hashed
        how, candidates = hashed
        sk.sport = sk.num  # __inet_check_established / __inet_hash_connect set inet_sport
        sk.ehash_key = key_of(sk)
        self.ehash[sk.ehash_key] = sk
        self.listens.inuse[sk.family] += 1
        if lost:
            # IPv6 routes a non-local (IP_FREEBIND) source; the answer goes to that address,
            # which is not this host's: connect() waits until the harness's timeout
            return Outcome("EINPROGRESS", f"{fn}: {how}; the answer to non-local source {saddr} "
                           "never comes back", candidates=candidates, random=self.search_may_fail)
        return self._deliver_syn(sk, saddr, daddr, addr.port, f"{fn}: {how}", candidates)

    def _connect_route(self, sk: Sock, dest: IPAddr) -> tuple[str, IPAddr, IPAddr] | Outcome:
        """tcp_v4_connect / tcp_v6_connect up to the route: which of them runs (a v4-mapped
        destination goes to tcp_v4_connect), and the source, bound or the route's; (the
        function, source, destination), or the error."""
        daddr = dest
        fn = "tcp_v4_connect"
        if sk.family == AF_INET6:
            assert isinstance(daddr, ipaddress.IPv6Address)
            if ipv6_addr_type(daddr) == AddrType.MAPPED:
                if sk.ipv6_only:
                    return Outcome("ENETUNREACH", "tcp_v6_connect: v4-mapped address on a v6-only socket")
                fn = "tcp_v6_connect -> tcp_v4_connect"
                daddr = daddr.ipv4_mapped
            else:
                fn = "tcp_v6_connect"
        assert daddr is not None
        # an unbound source comes from the route (tcp_v4_connect: !inet->inet_saddr;
        # tcp_v6_connect: ipv6_addr_any(sk_v6_rcv_saddr)); the route to a local address is
        # the local table's
        if isinstance(daddr, ipaddress.IPv4Address):
            saddr: IPAddr = ipaddress.IPv4Address(sk.rcv_saddr)
            rtype = self.host.inet_addr_type(saddr, self.profile.network_address_broadcast)
            # __inet_bind keeps inet_saddr 0 for a multicast or broadcast address ("use device")
            unbound = not sk.rcv_saddr or (
                sk.family == AF_INET and rtype in (RouteType.MULTICAST, RouteType.BROADCAST))
            if not unbound:
                # ip_route_connect -> __ip_route_output_key: the source must be usable and local
                # (__ip_dev_find; FLOWI_FLAG_ANYSRC only with IP_TRANSPARENT)
                if saddr.is_multicast or int(saddr) == 0xFFFFFFFF:
                    return Outcome("EINVAL", f"{fn}: __ip_route_output_key: source {saddr} is "
                                   "multicast or limited broadcast")
                if rtype != RouteType.LOCAL:
                    return Outcome("ENETUNREACH", f"{fn}: __ip_route_output_key: source {saddr} "
                                   "is not a local address (__ip_dev_find)")
        else:
            saddr = sk.v6_rcv_saddr
            unbound = saddr == IN6ADDR_ANY
            if ipv6_addr_type(saddr) == AddrType.MAPPED:
                # ip6_dst_lookup_tail: a v4-mapped source cannot reach an IPv6 destination
                return Outcome("EAFNOSUPPORT", "tcp_v6_connect: ip6_dst_lookup_tail: v4-mapped "
                               f"source {saddr} for IPv6 destination {daddr}")
        if unbound:
            saddr = self.host.local_route_src(daddr)
            self._update_saddr(sk, saddr)  # inet_bhash2_update_saddr
        return fn, saddr, daddr

    def _hash_connect(self, sk: Sock, fn: str, saddr: IPAddr, daddr: IPAddr, dport: int,
                      choice: int | None) -> tuple[str, PortChoice | None] | Outcome:
        """inet_hash_connect: a bound port's 4-tuple must be unique in ehash; port 0 searches
        the range (__inet_hash_connect). How the port came, and the search's candidates; or
        the failure (tcp_v4_connect's failure label)."""
        if sk.num:
            # inet_hash_connect with a bound port: __inet_check_established(..., twp = NULL)
            u = check_established(self.ehash, key_of(sk), False, self.sysctls)
            if not u.ok:
                return self._connect_failed(sk, "EADDRNOTAVAIL", f"{fn}: __inet_hash_connect: "
                                            f"port {sk.num} bound; {u.reason}")
            if u.tw is not None:
                self._tw_kill(u.tw)  # inet_twsk_deschedule_put
            return f"bound port {sk.num}; {u.reason}", None
        candidates = self.connect_search.candidates(sk, saddr, daddr, dport, self.ehash,
                                                    self.sysctls, self.profile.connect_range_step1)
        port = self._pick(candidates, choice)
        if port is None:
            out = self._connect_failed(sk, "EADDRNOTAVAIL", f"{fn}: __inet_hash_connect: "
                                       "no usable port in range" + (
                                           f" from this offset; {candidates.describe()}"
                                           if candidates else ""))
            return Outcome(out.value, out.reason, candidates=candidates, random=self.search_may_fail)
        self._hash_connect_bind(sk, port)
        sk.autobound = self.search_random
        return f"picked port {port} from {candidates.describe()}", candidates

    def _update_saddr(self, sk: Sock, saddr: object) -> None:
        """inet_bhash2_update_saddr: set the source address; a bound socket moves to the bind2
        bucket of its new address."""
        tb = sk.bind_hash
        if tb is not None:
            tb2 = sk.bind2_hash
            assert tb2 is not None
            self.binds.remove_owner(tb2, sk)
            self.binds.destroy_if_empty(None, tb2)
        self._set_saddr(sk, saddr)
        if tb is not None:
            tb2 = self.binds.bucket2(tb.port, tb.l3mdev, sk) or self.binds.create2(tb, sk)
            if sk.userlocks & SOCK_CONNECT_BIND and self.profile.connect_bind_reset:
                tb2.fastreuse = tb2.fastreuseport = -1
            sk.bind2_hash = tb2
            self.binds.add_owner(tb2, sk)

    def _reset_saddr(self, sk: Sock) -> None:
        """inet_bhash2_reset_saddr: back to no source address unless bind() locked it."""
        if not sk.userlocks & SOCK_BINDADDR_LOCK:
            self._update_saddr(sk, None)

    @staticmethod
    def _set_saddr(sk: Sock, saddr: object) -> None:
        """inet_update_saddr / inet_reset_saddr."""
        if saddr is None:
            sk.rcv_saddr, sk.v6_rcv_saddr = 0, IN6ADDR_ANY
        elif isinstance(saddr, ipaddress.IPv4Address):
            sk.rcv_saddr = int(saddr)
            if sk.family == AF_INET6:
                sk.v6_rcv_saddr = v4mapped(int(saddr))
        else:
            sk.v6_rcv_saddr = saddr

    def _hash_connect_bind(self, sk: Sock, port: int) -> None:
        """__inet_hash_connect's ok label: a new bind bucket is marked connect()-only
        (fastreuse = fastreuseport = -1); sk joins its bind2 bucket (inet_bind_hash)."""
        tb = self.binds.bucket(port, 0)
        if tb is None:
            tb = self.binds.create(port, 0)
            tb.fastreuse = tb.fastreuseport = -1
        tb2 = self.binds.bucket2(port, 0, sk)
        if tb2 is None:
            tb2 = self.binds.create2(tb, sk)
            if self.profile.connect_bind_reset:
                tb2.fastreuse = tb2.fastreuseport = -1
        self.binds.bind_hash(sk, tb, tb2, port)
        if self.profile.connect_bind_reset:
            sk.userlocks |= SOCK_CONNECT_BIND

    def _disconnect(self, sk: Sock) -> None:
        """__inet_stream_connect's sock_error label -> tcp_disconnect: the peer is forgotten and
        the source address reset unless bind() locked it (inet_bhash2_reset_saddr); inet_sport
        is left as it was."""
        sk.daddr, sk.dport = None, 0
        sk.peer = None
        self._reset_saddr(sk)

    def _connect_failed(self, sk: Sock, err: str, reason: str) -> Outcome:
        """tcp_v4_connect's failure label: tcp_set_state(TCP_CLOSE) (the port goes unless
        bind() locked it) and inet_bhash2_reset_saddr (unless bind() locked the address)."""
        sk.state = TcpState.CLOSE
        self._touch(sk)
        if sk.bind_hash is not None and not sk.userlocks & SOCK_BINDPORT_LOCK:
            self._put_port(sk)
        self._reset_saddr(sk)
        sk.daddr, sk.dport = None, 0
        return Outcome(err, reason)

    def _deliver_syn(self, sk: Sock, saddr, daddr, dport: int, how: str,
                     candidates: PortChoice | None) -> Outcome:
        """The SYN through loopback: the server's TIME_WAIT on this 4-tuple gives way
        (tcp_timewait_state_process: TCP_TW_SYN, the new ISN being later), then the listener
        lookup; no listener: RST (ECONNREFUSED); a full accept queue drops the SYN and the
        harness's connect timeout ends the wait (EINPROGRESS)."""
        server_key = conn_key(daddr, dport, saddr, sk.num)
        if server_key == key_of(sk):
            # the SYN meets the socket itself in SYN_SENT: a simultaneous open with itself
            # (tcp_rcv_synsent_state_process: SYN without ACK -> SYN_RECV -> ESTABLISHED)
            sk.state, sk.connected, sk.peer = TcpState.ESTABLISHED, True, sk
            sk.ts_recent_stamp = bool(self.sysctls.tcp_timestamps)
            return Outcome("0", f"{how}; the 4-tuple is its own: connected to itself "
                           "(simultaneous open)", candidates=candidates, random=self.search_may_fail)
        tw = self.ehash.get(server_key)
        if tw is not None and tw.state == TcpState.TIME_WAIT:
            self._tw_kill(tw)
            how += f"; {tw.name} gave way (TCP_TW_SYN)"
        syn = Syn(saddr, sk.num, daddr, dport, b"", LOOPBACK_IFINDEX, self.cpu)
        found = self.lookup.listener(syn)
        listener = found.sk
        if listener is None and found.one_of:
            listener = self._rng.choice(found.one_of)
        if listener is None:
            self._tcp_done(sk)
            self._disconnect(sk)
            return Outcome("ECONNREFUSED", f"{how}; {found.reason}: RST; tcp_disconnect",
                           candidates=candidates, random=self.search_may_fail)
        if len(listener.accept_queue) > listener.max_ack_backlog:  # sk_acceptq_is_full
            return Outcome("EINPROGRESS", f"{how}; {listener.name}'s accept queue is full: SYN "
                           "dropped (tcp_conn_request); connect() waits", candidates=candidates,
                           random=self.search_may_fail)
        self._new_child(listener, daddr, saddr, sk.num, sk)
        sk.state = TcpState.ESTABLISHED
        self._touch(sk)
        sk.connected = True
        sk.ts_recent_stamp = bool(self.sysctls.tcp_timestamps)
        sk.peer = listener.accept_queue[-1]
        return Outcome("0", f"{how}; {found.reason}: queued on {listener.name}",
                       candidates=candidates, random=self.search_may_fail)

    def accept(self, fd: int, name: str) -> tuple[int | None, Outcome]:
        """accept(), non-blocking: inet_csk_accept takes the oldest child (EINVAL when not
        listening, EAGAIN when empty); the value is the peer's socket name."""
        sk = self._sock(fd)
        if sk is None:
            return None, self._ebadf(fd)
        if sk.state != TcpState.LISTEN:
            return None, Outcome("EINVAL", f"inet_csk_accept: {sk.name} is not listening")
        if not sk.accept_queue:
            return None, Outcome("EAGAIN", f"inet_csk_accept: {sk.name}'s queue is empty",
                                 random=self.hash_dependent)
        child = sk.accept_queue.pop(0)
        child.parent = None
        if child.injected:
            self.injected -= 1
        child.name = name
        child.connected = True  # inet_accept: newsock->state = SS_CONNECTED
        self.socks.append(child)
        peer = child.peer
        who = peer.name if peer is not None else _peer_text(child)
        return len(self.socks) - 1, Outcome(who, f"inet_csk_accept: {sk.name}'s oldest child, "
                                            f"from {who} ({child.state.value})",
                                            random=self.hash_dependent)

    def tw(self) -> Outcome:
        """sockstat's TCP "tw": TIME_WAIT sockets of the namespace (tcp_death_row.tw_refcount - 1)."""
        return Outcome(str(self.tw_count), f"inet_twsk_alloc / inet_twsk_kill: {self.tw_count} "
                       "TIME_WAIT socket(s)")

def _peer_text(sk: Sock) -> str:
    """An injected client as accept() reports it: address:port ([v6]:port)."""
    assert sk.daddr is not None
    if isinstance(sk.daddr, ipaddress.IPv6Address):
        return f"[{sk.daddr}]:{sk.dport}"
    return f"{sk.daddr}:{sk.dport}"
