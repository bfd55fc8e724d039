"""The model's system-call surface: one network namespace, driven like the real kernel.

Pure: no I/O, no clock; the only randomness is seeded (an ephemeral port, a listener the hash
cannot predict), and a caller that knows the real kernel's choice passes it in (`choice=`) so
both stay in step when the kernel could have made it. Every call returns an Outcome whose reason
names the kernel function and rule that decided.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from socket import AF_INET, AF_INET6

from model.addr import (
    AF_UNSPEC,
    SIN6_LEN_RFC2133,
    SOCKADDR_IN,
    SOCKADDR_STORAGE,
    RawSockAddr,
    SockAddr,
)
from model.bind import BindTables, inet_csk_get_port
from model.connect import (
    LOOPBACK_IFINDEX,
    ConnKey,
    check_established,
    conn_key,
    hash_connect_candidates,
    key_of,
    port_usable,
)
from model.ephemeral import PortFinder
from model.host import Host, RouteType
from model.listen import ListenTables
from model.lookup import Lookup, Syn
from model.outcome import Outcome, PortChoice
from model.profiles import Profile
from model.queues import SynFate, sk_acceptq_is_full, tcp_conn_request
from model.reuseport import reuseport_detach_sock, reuseport_migrate_sock
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
from model.sockopt import OptValue, SockOpt, setsockopt
from model.sysctl import Sysctls


@dataclass
class Kernel:
    """A namespace's TCP socket tables under one profile and set of sysctls.

    hash_secret: inet_ehash_secret + net_hash_mix of the namespace (calibrated); None when
    unknown, and then reuseport picks by hash are predicted as 'one of the group'.
    """

    profile: Profile
    host: Host
    sysctls: Sysctls = field(default_factory=Sysctls)
    seed: int = 0
    hash_secret: int | None = None
    cpu: int = 0  # the CPU the harness runs system calls on (loopback SYNs arrive there)
    socks: list[Sock] = field(default_factory=list)
    binds: BindTables = field(default_factory=BindTables)
    listens: ListenTables = field(default_factory=ListenTables)

    def __post_init__(self) -> None:
        self.binds.rules = self.profile.bind
        self._rng = random.Random(self.seed)
        self.lookup = Lookup(self.listens, self.hash_secret, self.profile.ehash_lport_outside)
        self._seen: dict[tuple, Sock] = {}  # tuple -> socket, where the pick was not predicted
        # ehash: connected, child and TIME_WAIT sockets by their 4-tuple (inet_match)
        self.ehash: dict[ConnKey, Sock] = {}
        self.injected = 0  # children of injected SYNs not yet swept
        self.unswept = 0  # syn steps whose listener the harness learns only by a sweep
        self.half_open: dict[ConnKey, str] = {}  # what each syn_only got (SYNACK, COOKIE, ...)
        # a listener or migration was picked by the namespace's hash (or guessed for it): what
        # depends on the pick differs between namespaces, so it is compared with this kernel
        # but never recorded as an expectation
        self.hash_dependent = False
        self.tw_count = 0  # tcp_death_row.tw_refcount - 1: what sockstat calls "tw"
        self.random_picks = 0  # port searches with more than one possible result so far
        self.search_random = False  # the last port search's port depends on chance
        self.search_may_fail = False  # ... and whether it found one at all

    # -- helpers ---------------------------------------------------------------------------

    def _sock(self, fd: int) -> Sock | None:
        """The open socket behind fd, or None (EBADF)."""
        if 0 <= fd < len(self.socks) and not self.socks[fd].fd_closed:
            return self.socks[fd]
        return None

    def _ebadf(self, fd: int) -> Outcome:
        name = self.socks[fd].name if 0 <= fd < len(self.socks) else str(fd)
        return Outcome("EBADF", f"fdget: {name}'s descriptor was closed")

    def _get_port(
        self, sk: Sock, snum: int, choice: int | None
    ) -> tuple[Outcome | None, PortChoice | None, str]:
        """sk->sk_prot->get_port; on port 0 the pick is the caller's choice when the kernel
        could have made it, else the model's seeded one."""
        finder = PortFinder(self.binds, self.sysctls)
        candidates: PortChoice | None = None

        def find_open_port(s: Sock) -> int | None:
            nonlocal candidates
            candidates = finder.candidates(s, self.profile)
            return self._pick(candidates, choice)

        self.search_random = self.search_may_fail = False
        res = inet_csk_get_port(self.binds, sk, snum, find_open_port)
        if res.error:
            return (Outcome(res.error, res.reason, candidates=candidates,
                            random=self.search_may_fail), candidates, res.reason)
        if not snum:
            sk.autobound = self.search_random
        return None, candidates, res.reason

    def _pick(self, candidates: PortChoice | None, choice: int | None) -> int | None:
        """The port a search returns: the kernel's pick when it could have made it (choice 0:
        it found none), else a seeded one; None when no port is found.

        Sets search_may_fail (whether the call succeeds is chance: some offsets find no port)
        and search_random (the port may differ from run to run, because this search has several
        possible results or an earlier one had and shaped what was free). Such values are
        compared with the kernel's, never recorded as expectations."""
        if candidates is not None and (len(candidates.ports) > 1 or candidates.may_fail):
            self.random_picks += 1
        self.search_random = self.random_picks > 0
        self.search_may_fail = candidates is not None and candidates.may_fail
        if candidates is None:
            return None
        if choice == 0 and candidates.may_fail:
            return None
        if choice is not None and choice in candidates:
            return choice
        options: list[int | None] = list(candidates.ports)
        if candidates.may_fail:
            options.append(None)
        return self._rng.choice(options)

    # -- system calls ----------------------------------------------------------------------

    def socket(self, name: str, family: int, uid: int) -> tuple[int, Outcome]:
        """socket(): inet_create / inet6_create; the inode uid (sock_i_uid) is the caller's
        fsuid; an AF_INET6 socket starts v6-only iff net.ipv6.bindv6only."""
        sk = Sock(name=name, family=family, uid=uid)
        if family == AF_INET6:
            sk.ipv6only = bool(self.sysctls.bindv6only)
        self.socks.append(sk)
        fn = "inet6_create" if family == AF_INET6 else "inet_create"
        return len(self.socks) - 1, Outcome("0", f"{fn}: {name} uid {uid}")

    def closed_fd(self, name: str) -> int:
        """A descriptor for a name whose creating call failed: every use is EBADF."""
        self.socks.append(Sock(name=name, fd_closed=True))
        return len(self.socks) - 1

    def setsockopt(self, fd: int, opt: SockOpt, value: OptValue) -> Outcome:
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        hashed = sk.state == TcpState.LISTEN
        err, reason = setsockopt(sk, opt, value, self.host.ifindex, hashed)
        return Outcome(err, reason)

    def bind(self, fd: int, addr: SockAddr | RawSockAddr, choice: int | None = None) -> Outcome:
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        if isinstance(addr, RawSockAddr):
            return self._bind_raw(sk, addr, choice)
        if sk.family == AF_INET6:
            return self._bind6(sk, addr, choice)
        return self._bind4(sk, addr, choice)

    def _bind_raw(self, sk: Sock, raw: RawSockAddr, choice: int | None) -> Outcome:
        """__sys_bind with a sockaddr as bytes: move_addr_to_kernel, then inet_bind_sk /
        inet6_bind_sk check the length, and __inet_bind / __inet6_bind the family."""
        if raw.length < 0 or raw.length > SOCKADDR_STORAGE:
            return Outcome("EINVAL", f"move_addr_to_kernel: length {raw.length} is not 0-"
                           f"{SOCKADDR_STORAGE}")
        family = raw.family()
        if sk.family == AF_INET6:
            if raw.length < SIN6_LEN_RFC2133:
                return Outcome("EINVAL", f"inet6_bind_sk: length {raw.length} < SIN6_LEN_RFC2133 "
                               f"({SIN6_LEN_RFC2133})")
            if family != AF_INET6:
                return Outcome("EAFNOSUPPORT", f"__inet6_bind: sin6_family {family} is not AF_INET6")
            return self._bind6(sk, raw.as_in6(), choice)
        if raw.length < SOCKADDR_IN:
            return Outcome("EINVAL", f"inet_bind_sk: length {raw.length} < sizeof(struct "
                           f"sockaddr_in) ({SOCKADDR_IN})")
        addr = raw.as_in()
        if family != AF_INET:
            # "Compatibility games: accept AF_UNSPEC (mapped to AF_INET) only if s_addr is
            # INADDR_ANY"
            if family != AF_UNSPEC or int(addr.host) != 0:
                return Outcome("EAFNOSUPPORT", f"__inet_bind: sin_family {family} is not AF_INET "
                               "(AF_UNSPEC passes only with INADDR_ANY)")
        return self._bind4(sk, addr, choice)

    def _bind4(self, sk: Sock, addr: SockAddr, choice: int | None) -> Outcome:
        """inet_bind -> __inet_bind, checks in the kernel's order."""
        if addr.family != AF_INET:
            return Outcome("EAFNOSUPPORT", "__inet_bind: sin_family is not AF_INET")
        host = addr.host
        assert isinstance(host, ipaddress.IPv4Address)
        invalid = self._addr_valid_or_nonlocal(sk, host, "__inet_bind")
        if invalid:
            return invalid
        snum = addr.port
        denied = self._needs_bind_service(sk, snum, "__inet_bind")
        if denied:
            return denied
        if sk.state != TcpState.CLOSE or sk.num:
            return self._already(sk, "__inet_bind")
        sk.rcv_saddr = int(host)
        if not snum and sk.bind_address_no_port:
            # __inet_bind: get_port only "if (snum || !BIND_ADDRESS_NO_PORT)": the address is
            # kept, the port is chosen later (listen or connect), inet_num stays 0
            if sk.rcv_saddr:
                sk.userlocks |= SOCK_BINDADDR_LOCK
            sk.sport = sk.num  # inet->inet_sport = htons(inet->inet_num), still 0
            return Outcome("0", "__inet_bind: IP_BIND_ADDRESS_NO_PORT: address only, no port yet")
        err, candidates, why = self._get_port(sk, snum, choice)
        if err:
            sk.rcv_saddr = 0  # inet->inet_saddr = inet->inet_rcv_saddr = 0
            return err
        if sk.rcv_saddr:
            sk.userlocks |= SOCK_BINDADDR_LOCK
        if snum:
            sk.userlocks |= SOCK_BINDPORT_LOCK
        sk.sport = sk.num  # inet->inet_sport = htons(inet->inet_num)
        return Outcome("0", self._bound_reason(why, candidates), candidates=candidates,
                       random=self.search_may_fail)

    def _bind6(self, sk: Sock, addr: SockAddr, choice: int | None) -> Outcome:
        """inet6_bind -> __inet6_bind, checks in the kernel's order (EACCES before EINVAL)."""
        if addr.family != AF_INET6:
            return Outcome("EAFNOSUPPORT", "__inet6_bind: sin6_family is not AF_INET6")
        host = addr.host
        assert isinstance(host, ipaddress.IPv6Address)
        kind = ipv6_addr_type(host)
        if kind == AddrType.MULTICAST:
            return Outcome("EINVAL", "__inet6_bind: multicast address on a SOCK_STREAM socket")
        snum = addr.port
        denied = self._needs_bind_service(sk, snum, "__inet6_bind")
        if denied:
            return denied
        if sk.state != TcpState.CLOSE or sk.num:
            return self._already(sk, "__inet6_bind")
        v4addr = 0
        if kind == AddrType.MAPPED:
            if sk.ipv6_only:
                return Outcome("EINVAL", "__inet6_bind: v4-mapped address on a v6-only socket")
            mapped = host.ipv4_mapped
            assert mapped is not None
            v4addr = int(mapped)
            # "Reproduce AF_INET checks": inet_addr_type_dev_table, whose dev only picks a table
            invalid = self._addr_valid_or_nonlocal(sk, mapped, "__inet6_bind")
            if invalid:
                return invalid
        elif kind != AddrType.ANY:
            if kind == AddrType.LINKLOCAL and not sk.bound_dev_if:
                return Outcome("EINVAL", "__inet6_bind: a link-local address needs a bound device")
            v4addr = LOOPBACK4_IPV6  # "ipv4 addr of the socket is invalid"
            # ipv6_can_nonlocal_bind: net.ipv6.ip_nonlocal_bind or the socket's FREEBIND
            if not (self.sysctls.ipv6_nonlocal_bind or sk.freebind
                    or self.host.ipv6_chk_addr(host, sk.bound_dev_if)):
                return Outcome("EADDRNOTAVAIL", f"__inet6_bind: ipv6_chk_addr({host}) fails")
        sk.rcv_saddr = v4addr
        sk.v6_rcv_saddr = host
        saved_ipv6only = sk.ipv6only
        if kind not in (AddrType.ANY, AddrType.MAPPED):
            sk.ipv6only = True  # a specific IPv6 address makes the socket v6-only
        if not snum and sk.bind_address_no_port:
            # __inet6_bind, as __inet_bind: the address now, the port later
            if kind != AddrType.ANY:
                sk.userlocks |= SOCK_BINDADDR_LOCK
            sk.sport = sk.num
            return Outcome("0", "__inet6_bind: IP_BIND_ADDRESS_NO_PORT: address only, no port yet")
        err, candidates, why = self._get_port(sk, snum, choice)
        if err:
            sk.ipv6only = saved_ipv6only
            sk.rcv_saddr, sk.v6_rcv_saddr = 0, IN6ADDR_ANY  # inet_reset_saddr
            return err
        if kind != AddrType.ANY:
            sk.userlocks |= SOCK_BINDADDR_LOCK
        if snum:
            sk.userlocks |= SOCK_BINDPORT_LOCK
        sk.sport = sk.num
        return Outcome("0", self._bound_reason(why, candidates), candidates=candidates,
                       random=self.search_may_fail)

    def _addr_valid_or_nonlocal(self, sk: Sock, addr: ipaddress.IPv4Address, fn: str) -> Outcome | None:
        """inet_addr_valid_or_nonlocal: nonlocal bind allowed, INADDR_ANY, or an address whose
        type is local, multicast or broadcast; else EADDRNOTAVAIL."""
        rtype = self.host.inet_addr_type(addr)
        if (self._can_nonlocal_bind(sk) or int(addr) == 0
                or rtype in (RouteType.LOCAL, RouteType.MULTICAST, RouteType.BROADCAST)):
            return None
        return Outcome("EADDRNOTAVAIL", f"{fn}: inet_addr_type({addr}) is {rtype.value}, not local "
                       "(inet_addr_valid_or_nonlocal)")

    def _can_nonlocal_bind(self, sk: Sock) -> bool:
        """inet_can_nonlocal_bind: net.ipv4.ip_nonlocal_bind, or the socket's FREEBIND."""
        return bool(self.sysctls.ip_nonlocal_bind) or sk.freebind

    def _needs_bind_service(self, sk: Sock, snum: int, fn: str) -> Outcome | None:
        """inet_port_requires_bind_service && !ns_capable(CAP_NET_BIND_SERVICE): the harness
        calls with the socket's uid as euid, and only uid 0 has the capability."""
        if snum and snum < self.sysctls.ip_unprivileged_port_start and sk.uid != 0:
            return Outcome(
                "EACCES",
                f"{fn}: port {snum} < ip_unprivileged_port_start "
                f"{self.sysctls.ip_unprivileged_port_start} and uid {sk.uid} lacks "
                "CAP_NET_BIND_SERVICE",
            )
        return None

    @staticmethod
    def _already(sk: Sock, fn: str) -> Outcome:
        what = f"already bound to port {sk.num}" if sk.num else f"in state {sk.state.value}"
        return Outcome("EINVAL", f"{fn}: {sk.name} is {what}")

    def listen(self, fd: int, backlog: int, choice: int | None = None) -> Outcome:
        """__sys_listen -> inet_listen -> __inet_listen_sk -> inet_csk_listen_start."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        if backlog > self.sysctls.somaxconn or backlog < 0:
            backlog = self.sysctls.somaxconn  # __sys_listen: (unsigned)backlog > somaxconn
        if sk.state not in (TcpState.CLOSE, TcpState.LISTEN):
            return Outcome("EINVAL", f"__inet_listen_sk: {sk.name} is {sk.state.value}")
        sk.max_ack_backlog = backlog
        if sk.state == TcpState.LISTEN:
            return Outcome("0", f"__inet_listen_sk: already listening; backlog now {backlog}")
        # inet_csk_listen_start: LISTEN first, then get_port re-validates the port
        sk.state = TcpState.LISTEN
        err, candidates, why = self._get_port(sk, sk.num, choice)
        if err:
            sk.state = TcpState.CLOSE  # inet_sk_set_state(sk, TCP_CLOSE)
            return Outcome(
                err.value, f"inet_csk_listen_start: get_port failed: {err.reason}",
                candidates=err.candidates, random=err.random,
            )
        hash_err = self.listens.inet_hash(sk)
        if hash_err:
            sk.state = TcpState.CLOSE
            return Outcome(hash_err, "__inet_hash: inet_reuseport_add_sock: sk is already in a "
                           "group with other members")
        sk.sport = sk.num  # inet_csk_listen_start: inet->inet_sport = htons(inet->inet_num)
        reason = f"inet_csk_listen_start: {self._bound_reason(why, candidates)}"
        if sk.reuseport_cb is not None:
            group = sk.reuseport_cb
            reason += f"; reuseport group slot {group.socks.index(sk)} of {group.num_socks}"
        return Outcome("0", reason, candidates=candidates, random=self.search_may_fail)

    def close(self, fd: int) -> Outcome:
        """close(): tcp_close. A listener resets its queued children (inet_csk_listen_stop) and
        is unhashed; a connection sends its FIN and, closing first, becomes a TIME_WAIT socket
        (tcp_time_wait; FIN_WAIT2 substate until the peer's FIN); closing second, it is gone
        once the peer ACKs (LAST_ACK -> CLOSE). The port is released (inet_put_port)."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        was = sk.state
        port = sk.num
        what = ""
        if sk.state == TcpState.LISTEN:
            what = self._listen_stop(sk)
        elif sk.state == TcpState.ESTABLISHED:
            what = self._active_close(sk)
        elif sk.state == TcpState.CLOSE_WAIT:
            what = self._passive_close(sk)
        elif sk.state == TcpState.SYN_SENT:
            self._unhash_conn(sk)
        if sk.reuseport_cb is not None and not sk.syn_queue:
            # the group leaves with the socket (sk_destruct -> reuseport_detach_sock): at once,
            # unless request sockets still hold the closed listener
            reuseport_detach_sock(sk)
        sk.state = TcpState.CLOSE
        if sk.bind_hash is not None:
            self._put_port(sk)
        sk.fd_closed = True
        released = f"released port {port}" if port else "was not bound"
        return Outcome("0", f"tcp_close: {sk.name} ({was.value}) {released}{what}")

    def shutdown(self, fd: int) -> Outcome:
        """shutdown(SHUT_RDWR): inet_shutdown. A listener is disconnected (tcp_disconnect ->
        inet_csk_listen_stop) like a close but keeps its descriptor, and its port if bind()
        chose it; an unconnected socket is ENOTCONN."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        if sk.state == TcpState.CLOSE:
            return Outcome("ENOTCONN", f"inet_shutdown: {sk.name} is not connected")
        if sk.state != TcpState.LISTEN:
            return Outcome("UNMODELLED", f"inet_shutdown of a {sk.state.value} socket is not modelled")
        what = self._listen_stop(sk)
        sk.state = TcpState.CLOSE
        if sk.bind_hash is not None and not sk.userlocks & SOCK_BINDPORT_LOCK:
            self._put_port(sk)  # tcp_set_state(TCP_CLOSE)
        return Outcome("0", f"inet_shutdown -> tcp_disconnect: {sk.name} stops listening{what}")

    def _listen_stop(self, sk: Sock) -> str:
        """tcp_set_state(TCP_CLOSE) -> inet_unhash (reuseport_stop_listen_sock), then
        inet_csk_listen_stop: each queued child migrates to another listener of the group
        (reuseport_migrate_sock, with tcp_migrate_req) or is reset. Request sockets wait for
        their ACK, which migrates them the same way or, without migration, finds none."""
        migrate = bool(self.sysctls.tcp_migrate_req)
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
        if not (migrate and sk.reuseport_cb is not None):
            for req in list(sk.syn_queue):
                # a packet that finds the request of a closed listener drops it and looks up
                # again (tcp_v4_rcv): gone for the model at once
                self._drop_req(req)
        parts = [f"reset {reset} queued connection(s)"] if reset else []
        parts += [f"migrated {n} to {name}" for name, n in moved.items()]
        return ("; " + ", ".join(parts)) if parts else ""

    def _migrate_target(self, sk: Sock, laddr, lport: int, faddr, fport: int) -> Sock | None:
        """reuseport_migrate_sock for a connection of closed listener sk; None: no migration."""
        migrate = bool(self.sysctls.tcp_migrate_req)
        if sk.reuseport_cb is None or not migrate:
            return None
        h = self.lookup.ehash_of(laddr, lport, faddr, fport)
        self.hash_dependent = True  # by the namespace's hash, or a guess for it
        nsk, _ = reuseport_migrate_sock(sk, h, self.cpu, migrate, pick=self._rng.choice)
        if nsk is None or nsk.state != TcpState.LISTEN:
            return None
        return nsk

    # -- connections -----------------------------------------------------------------------

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
        if sk.bind_hash is not None and not sk.userlocks & SOCK_BINDPORT_LOCK:
            self._put_port(sk)

    def _receive_rst(self, sk: Sock) -> None:
        """A RST reaching sk: tcp_reset -> tcp_done; a TIME_WAIT socket is killed
        (tcp_timewait_state_process, net.ipv4.tcp_rfc1337 = 0)."""
        if sk.state == TcpState.TIME_WAIT:
            self._tw_kill(sk)
        elif sk.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
            self._tcp_done(sk)

    def _listen_stop_child(self, child: Sock) -> None:
        """inet_csk_listen_stop -> inet_child_forget -> tcp_disconnect: a queued child is
        aborted, its peer gets a RST (tcp_need_reset), and the child's port is released."""
        if child.injected:
            self.injected -= 1
        child.parent = None
        if child.peer is not None:
            self._receive_rst(child.peer)
            child.peer.peer = None
        self._unhash_conn(child)
        child.state = TcpState.CLOSE
        if child.bind_hash is not None:
            self._put_port(child)

    def _active_close(self, sk: Sock) -> str:
        """tcp_close on ESTABLISHED: FIN, the peer ACKs (loopback delivers at once), and the
        orphan in FIN_WAIT2 becomes a TIME_WAIT socket (tcp_close: tcp_fin_time <=
        TCP_TIMEWAIT_LEN -> tcp_time_wait(sk, TCP_FIN_WAIT2, tmo)). The peer is CLOSE_WAIT."""
        peer = sk.peer
        if peer is sk:  # connected to itself: its own FIN is the peer's (CLOSING -> TIME_WAIT)
            self._time_wait(sk, TcpState.TIME_WAIT)
            return "; connected to itself: simultaneous close, TIME_WAIT"
        tw = self._time_wait(sk, TcpState.FIN_WAIT2)
        if peer is not None:
            peer.state = TcpState.CLOSE_WAIT
            peer.peer = tw
        return f"; now {tw.name} (TIME_WAIT, substate FIN_WAIT2), peer CLOSE_WAIT"

    def _passive_close(self, sk: Sock) -> str:
        """tcp_close on CLOSE_WAIT: FIN to the peer's TIME_WAIT socket, which moves to the
        TIME_WAIT substate and ACKs (tcp_timewait_state_process); sk goes LAST_ACK -> CLOSE."""
        tw = sk.peer
        if tw is not None and tw.state == TcpState.TIME_WAIT:
            tw.tw_substate = TcpState.TIME_WAIT
            tw.peer = None
        self._unhash_conn(sk)
        return "; the peer's TIME_WAIT socket ACKed our FIN"

    def _time_wait(self, sk: Sock, substate: TcpState) -> Sock:
        """tcp_time_wait -> inet_twsk_alloc + inet_twsk_hashdance_schedule: a TIME_WAIT socket
        takes sk's place in ehash and joins sk's bind2 bucket (sk_add_bind_node); the closed
        sk leaves both (tcp_v4_destroy_sock -> inet_put_port)."""
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
        tb2.owners.insert(0, tw)
        self._put_port(sk)
        sk.state = TcpState.CLOSE
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
        child = Sock(name=f"{listener.name}<", family=listener.family, uid=listener.uid,
                     reuse=listener.reuse, reuseport=listener.reuseport, ipv6only=listener.ipv6only,
                     state=TcpState.ESTABLISHED, num=listener.num, sport=listener.num,
                     bound_dev_if=listener.bound_dev_if,
                     daddr=remote, dport=rport, peer=peer, parent=listener,
                     ts_recent_stamp=bool(self.sysctls.tcp_timestamps), injected=peer is None)
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
        """connect(): __inet_stream_connect -> tcp_v4_connect / tcp_v6_connect; the SYN then
        meets the destination's listener through loopback (tcp_v4_rcv), which answers at once."""
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
        daddr = addr.host
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
            saddr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(sk.rcv_saddr)
            rtype = self.host.inet_addr_type(saddr)
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
        lost = isinstance(saddr, ipaddress.IPv6Address) and not self.host.ipv6_chk_addr(saddr)
        sk.daddr, sk.dport = daddr, addr.port
        sk.state = TcpState.SYN_SENT
        candidates = None
        if sk.num:
            # inet_hash_connect with a bound port: __inet_check_established(..., twp = NULL)
            u = check_established(self.ehash, key_of(sk), False, self.sysctls)
            if not u.ok:
                return self._connect_failed(sk, "EADDRNOTAVAIL", f"{fn}: __inet_hash_connect: "
                                            f"port {sk.num} bound; {u.reason}")
            if u.tw is not None:
                self._tw_kill(u.tw)  # inet_twsk_deschedule_put
            how = f"bound port {sk.num}; {u.reason}"
        else:
            def usable(port: int) -> bool:
                return port_usable(self.binds, sk, port, conn_key(saddr, port, daddr, addr.port),
                                   self.ehash, self.sysctls)

            candidates = hash_connect_candidates(sk, usable, self.sysctls)
            port = self._pick(candidates, choice)
            if port is None:
                out = self._connect_failed(sk, "EADDRNOTAVAIL", f"{fn}: __inet_hash_connect: "
                                           "no usable port in range" + (
                                               f" from this offset; {candidates.describe()}"
                                               if candidates else ""))
                return Outcome(out.value, out.reason, candidates=candidates, random=self.search_may_fail)
            self._hash_connect_bind(sk, port)
            sk.autobound = self.search_random
            how = f"picked port {port} from {candidates.describe()}"
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

    def _update_saddr(self, sk: Sock, saddr: object) -> None:
        """inet_bhash2_update_saddr: set the source address; a bound socket moves to the bind2
        bucket of its new address."""
        tb = sk.bind_hash
        if tb is not None:
            tb2 = sk.bind2_hash
            assert tb2 is not None
            tb2.owners.remove(sk)
            self.binds.destroy_if_empty(None, tb2)
        self._set_saddr(sk, saddr)
        if tb is not None:
            tb2 = self.binds.bucket2(tb.port, tb.l3mdev, sk) or self.binds.create2(tb, sk)
            if sk.userlocks & SOCK_CONNECT_BIND and self.profile.connect_bind_reset:
                tb2.fastreuse = tb2.fastreuseport = -1
            sk.bind2_hash = tb2
            tb2.owners.insert(0, sk)

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
        if not sk.userlocks & SOCK_BINDADDR_LOCK:
            if sk.bind_hash is not None:
                self._update_saddr(sk, None)
            else:
                self._set_saddr(sk, None)

    def _connect_failed(self, sk: Sock, err: str, reason: str) -> Outcome:
        """tcp_v4_connect's failure label: tcp_set_state(TCP_CLOSE) (the port goes unless
        bind() locked it) and inet_bhash2_reset_saddr (unless bind() locked the address)."""
        sk.state = TcpState.CLOSE
        if sk.bind_hash is not None and not sk.userlocks & SOCK_BINDPORT_LOCK:
            self._put_port(sk)
        if not sk.userlocks & SOCK_BINDADDR_LOCK:
            if sk.bind_hash is not None:
                self._update_saddr(sk, None)
            else:
                self._set_saddr(sk, None)
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

    def getsockname(self, fd: int) -> Outcome:
        """inet_getname / inet6_getname: the bound address and port."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        # inet_getname / inet6_getname: the address and inet_sport
        return Outcome(sk.local_text(sk.sport), f"inet_getname: {sk.name}", random=sk.autobound)

    def inuse(self, family: int = AF_INET) -> Outcome:
        """sock_prot_inuse_get(net, &tcp_prot or &tcpv6_prot): listeners plus established
        sockets of that family (a child counts with its listener's)."""
        listeners = sum(1 for c in self.listens.lhash2.values() for s in c if s.family == family)
        n = self.listens.inuse[family]
        proto = "TCP6" if family == AF_INET6 else "TCP"
        return Outcome(str(n), f"sock_prot_inuse_add: {proto}: {listeners} listening socket(s) "
                       f"and {n - listeners} connected socket(s) in this namespace",
                       random=self.hash_dependent)

    def queue(self, fd: int) -> Outcome:
        """sk_ack_backlog of a listener, as sock_diag reports it (idiag_rqueue)."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        return Outcome(str(len(sk.accept_queue)),
                       f"inet_sk_diag_fill: {sk.name} holds {len(sk.accept_queue)} of "
                       f"{sk.max_ack_backlog} + 1", random=self.hash_dependent)

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
            seen_key = (key, tuple(s.name for s in one_of))
            names = {s.name: s for s in one_of}
            seen = self._seen.get(seen_key)
            if seen is not None and seen in one_of:
                sk, reason = seen, reason + f"; the same tuple went to {seen.name} before"
            else:
                sk = names[choice] if choice in names else self._rng.choice(one_of)
                self._seen[seen_key] = sk
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
        self._new_child(sk, syn.dst, syn.src, syn.sport, None, key)
        self.injected += 1
        self.unswept += 1
        # A pick by hash depends on the namespace's secret: exact against this kernel, but no
        # value to record for another namespace (random=True keeps it out of expectations).
        # Where the model could only name the group (one_of), the check is by property: a
        # member of the group, and for a tuple seen before, the same socket.
        return Outcome(sk.name, reason, one_of=tuple(s.name for s in one_of),
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
        tcp_abort_on_overflow, resets it)."""
        key = conn_key(syn.dst, syn.dport, syn.src, syn.sport)
        sent = self.half_open.get(key)
        if sent not in (SynFate.REQUEST.value, SynFate.COOKIE.value):
            return Outcome("DROP", "no SYN-ACK came back for this tuple: the harness sends no ACK")
        req = self.ehash.get(key)
        if req is not None and req.state == TcpState.SYN_RECV:
            listener = req.parent
            assert listener is not None
            if listener.state != TcpState.LISTEN:
                # tcp_v4_rcv: the request's listener is gone: reuseport_migrate_sock picks
                # another by the request's hash (tcp_migrate_req), or the request is dropped
                nsk = self._migrate_target(listener, syn.dst, syn.dport, syn.src, syn.sport)
                if nsk is not None:
                    self._drop_req(req)
                    req.parent = nsk
                    nsk.syn_queue.append(req)
                    self.ehash[key] = req
                    listener = nsk
            if listener.state == TcpState.LISTEN:
                if sk_acceptq_is_full(listener):
                    if self.sysctls.tcp_abort_on_overflow:  # listen_overflow -> embryonic_reset
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
        n = 0
        for sk in self.socks:
            if not sk.accept_queue or sk.fd_closed:
                continue
            kept = []
            for child in sk.accept_queue:
                if not child.injected:
                    kept.append(child)
                    continue
                n += 1
                self._unhash_conn(child)
                child.state = TcpState.CLOSE
                self._put_port(child)
            sk.accept_queue[:] = kept
        self.injected = 0
        self.unswept = 0
        return n

    @staticmethod
    def _bound_reason(why: str, candidates: PortChoice | None) -> str:
        if candidates is not None:
            return f"{why}, from {candidates.describe()}"
        return why


def _peer_text(sk: Sock) -> str:
    """An injected client as accept() reports it: address:port ([v6]:port)."""
    assert sk.daddr is not None
    if isinstance(sk.daddr, ipaddress.IPv6Address):
        return f"[{sk.daddr}]:{sk.dport}"
    return f"{sk.daddr}:{sk.dport}"
