"""The model's system-call surface: one network namespace, driven like the real kernel.

Pure: no I/O, no clock; the only randomness is seeded (an ephemeral port, a listener the hash
cannot predict), and a caller that knows the real kernel's choice passes it in (`choice=`) so
both stay in step when the kernel could have made it. Every call returns an Outcome whose reason
names the kernel function and rule that decided. Here: the socket calls (socket, setsockopt,
bind, listen, close, shutdown) and the counters; on top of datagrams.py (injected UDP
datagrams), handshakes.py (injected handshakes, the queues), connections.py (connect, accept, TIME_WAIT) and state.py (the tables).
"""

from __future__ import annotations

import errno
import functools
import ipaddress
from collections.abc import Callable
from socket import AF_INET, AF_INET6

from model.addr import (
    AF_UNSPEC,
    SIN6_LEN_RFC2133,
    SOCKADDR_IN,
    SOCKADDR_STORAGE,
    RawSockAddr,
    SockAddr,
)
from model.bind import inet_csk_get_port
from model.ebpf import EbpfProgram, SockArray
from model.ephemeral import local_port_range
from model.host import RouteType
from model.kernel.datagrams import Datagrams
from model.outcome import Outcome, PortChoice
from model.reuseport import reuseport_detach_sock
from model.sock import (
    IN6ADDR_ANY,
    LOOPBACK4_IPV6,
    SOCK_BINDADDR_LOCK,
    SOCK_BINDPORT_LOCK,
    AddrType,
    Proto,
    Sock,
    TcpState,
    ipv6_addr_type,
)
from model.sockopt import OptValue, SockOpt, setsockopt
from model.udp import hash2_key, search_candidates, udp_lib_get_port, udp_lib_rehash


class Kernel(Datagrams):
    """The model's system calls on one namespace (its state: KernelState)."""

    def _get_port(
        self, sk: Sock, snum: int, choice: int | None
    ) -> tuple[Outcome | None, PortChoice | None, str]:
        """sk->sk_prot->get_port; on port 0 the pick is the caller's choice when the kernel
        could have made it, else the model's seeded one."""
        finder = self.port_finder
        finder.sysctls = self.sysctls
        candidates: PortChoice | None = None

        def find_open_port(s: Sock) -> int | None:
            nonlocal candidates
            candidates = finder.candidates(s, self.profile)
            return self._pick(candidates, choice)

        def find_udp_port(s: Sock) -> int | None:
            nonlocal candidates
            low, high, _ = local_port_range(s, self.sysctls)  # inet_sk_get_local_port_range
            candidates = search_candidates(self.udp, s, low, high,
                                           self.sysctls.ip_local_reserved_ports)
            return self._pick(candidates, choice)

        self.search_random = self.search_may_fail = False
        if sk.proto is Proto.UDP:  # sk->sk_prot->get_port: udp_v4_get_port / udp_v6_get_port
            res = udp_lib_get_port(self.udp, sk, snum, self.profile.bind, find_udp_port)
        else:
            res = inet_csk_get_port(self.binds, sk, snum, find_open_port)
        if res.error:
            return (Outcome(res.error, res.reason, candidates=candidates,
                            random=self.search_may_fail), candidates, res.reason)
        if not snum:
            sk.autobound = self.search_random
        return None, candidates, res.reason

    # -- system calls ----------------------------------------------------------------------

    def socket(self, name: str, family: int, uid: int, proto: Proto = Proto.TCP) -> tuple[int, Outcome]:
        """socket(): inet_create / inet6_create; the inode uid (sock_i_uid) is the caller's
        fsuid; an AF_INET6 socket starts v6-only iff net.ipv6.bindv6only is odd."""
        sk = Sock(name=name, family=family, proto=proto, uid=uid)
        if family == AF_INET6:
            # inet6_create: sk->sk_ipv6only = net->ipv6.sysctl.bindv6only, a u8 (0..255) stored
            # in the 1-bit skc_ipv6only (include/net/sock.h): its low bit
            sk.ipv6only = bool(self.sysctls.bindv6only & 1)
        self.socks.append(sk)
        fn = "inet6_create" if family == AF_INET6 else "inet_create"
        udp = " UDP" if proto is Proto.UDP else ""
        return len(self.socks) - 1, Outcome("0", f"{fn}: {name}{udp} uid {uid}")

    def closed_fd(self, name: str) -> int:
        """A descriptor for a name whose creating call failed: every use is EBADF."""
        self.socks.append(Sock(name=name, fd_closed=True))
        return len(self.socks) - 1

    def setsockopt(self, fd: int, opt: SockOpt, value: OptValue) -> Outcome:
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        # !sk_unhashed(sk): a listener in lhash2, or a connection in ehash (sk_node, the same
        # node); a child's sk_reuseport_cb is NULL (sock.c:sk_clone_lock), so
        # reuseport_attach_prog refuses it with EINVAL, as a bound socket without a group
        hashed = sk.state == TcpState.LISTEN or sk.ehash_key is not None
        if sk.proto is Proto.UDP:  # a UDP socket is hashed by bind (udp_lib_get_port)
            hashed = sk in self.udp.chain(sk.num)
        if isinstance(value, EbpfProgram):
            if value.migrates and not self.profile.migrate_req:
                return Outcome("UNMODELLED", "BPF_SK_REUSEPORT_SELECT_OR_MIGRATE programs are 5.14+; "
                               "what an older kernel's BPF_PROG_LOAD answers is not modelled")
            if value.map_name and value.map_name not in self.maps:
                # kernel/bpf/verifier.c:resolve_pseudo_ldimm64: no map behind the fd (its
                # sockarray() failed): __bpf_map_get's -EBADF
                return Outcome("EBADF", f"BPF_PROG_LOAD: map {value.map_name} was not created")
            value = value.bind(self.maps)  # the program loaded with this run's map
        err, reason = setsockopt(sk, opt, value, self.host.ifindex, hashed,
                                 self.profile.attach_needs_reuseport,
                                 self.profile.local_port_range_opt)
        if opt is SockOpt.SO_BINDTODEVICE and err == "0" and hashed and sk.proto is Proto.UDP:
            reason += udp_lib_rehash(sk)  # sock_bindtoindex_locked: sk->sk_prot->rehash(sk)
        self._touch(sk)  # the port's owner may have new flags
        return Outcome(err, reason)

    def sockarray(self, name: str, max_entries: int) -> Outcome:
        """BPF_MAP_CREATE of a BPF_MAP_TYPE_REUSEPORT_SOCKARRAY (u32 keys, u64 socket fds)."""
        if max_entries == 0:
            # kernel/bpf/arraymap.c:array_map_alloc_check (reuseport_array_alloc_check calls it)
            return Outcome("EINVAL", "array_map_alloc_check: max_entries 0")
        self.maps[name] = SockArray(name, max_entries)
        return Outcome("0", f"reuseport_array_alloc: {name}, {max_entries} slots")

    def map_update(self, name: str, key: int, fd: int) -> Outcome:
        """BPF_MAP_UPDATE_ELEM of a socket's fd (BPF_ANY)."""
        if name not in self.maps:
            return _no_map(name)
        err, reason = self.maps[name].update(key, self._sock(fd))
        return Outcome(err, reason)

    def map_delete(self, name: str, key: int) -> Outcome:
        """BPF_MAP_DELETE_ELEM."""
        if name not in self.maps:
            return _no_map(name)
        err, reason = self.maps[name].delete(key)
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
        refused = self._may_bind(sk, snum, "__inet_bind")
        if refused:
            return refused
        sk.rcv_saddr = int(host)

        def undo() -> None:
            sk.rcv_saddr = 0  # inet->inet_saddr = inet->inet_rcv_saddr = 0

        return self._bind_port(sk, snum, choice, "__inet_bind", bool(sk.rcv_saddr), undo)

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
        refused = self._may_bind(sk, snum, "__inet6_bind")
        if refused:
            return refused
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

        def undo() -> None:
            sk.ipv6only = saved_ipv6only
            sk.rcv_saddr, sk.v6_rcv_saddr = 0, IN6ADDR_ANY  # inet_reset_saddr

        return self._bind_port(sk, snum, choice, "__inet6_bind", kind != AddrType.ANY, undo)

    def _may_bind(self, sk: Sock, snum: int, fn: str) -> Outcome | None:
        """The checks __inet_bind and __inet6_bind share, in their order: a privileged port
        (EACCES), then a socket bound already (EINVAL); None if it may bind."""
        denied = self._needs_bind_service(sk, snum, fn)
        if denied:
            return denied
        if sk.state != TcpState.CLOSE or sk.num:
            return self._already(sk, fn)
        return None

    def _bind_port(self, sk: Sock, snum: int, choice: int | None, fn: str, addr_bound: bool,
                   undo: Callable[[], None]) -> Outcome:
        """The tail __inet_bind and __inet6_bind share, once the address is set: the port
        (sk_prot->get_port) unless IP_BIND_ADDRESS_NO_PORT defers it, then the userlocks and
        inet_sport. `addr_bound`: a specific address (SOCK_BINDADDR_LOCK); `undo` takes the
        address back when no port is found."""
        if not snum and sk.bind_address_no_port:
            # get_port only "if (snum || !BIND_ADDRESS_NO_PORT)": the address is kept, the
            # port is chosen later (listen or connect), inet_num stays 0
            if addr_bound:
                sk.userlocks |= SOCK_BINDADDR_LOCK
            sk.sport = sk.num  # inet->inet_sport = htons(inet->inet_num), still 0
            return Outcome("0", f"{fn}: IP_BIND_ADDRESS_NO_PORT: address only, no port yet")
        err, candidates, why = self._get_port(sk, snum, choice)
        if err:
            undo()
            return err
        if addr_bound:
            sk.userlocks |= SOCK_BINDADDR_LOCK
        if snum:
            sk.userlocks |= SOCK_BINDPORT_LOCK
        sk.sport = sk.num  # inet->inet_sport = htons(inet->inet_num)
        return Outcome("0", self._bound_reason(why, candidates), candidates=candidates,
                       random=self.search_may_fail)

    def _addr_valid_or_nonlocal(self, sk: Sock, addr: ipaddress.IPv4Address, fn: str) -> Outcome | None:
        """inet_addr_valid_or_nonlocal: nonlocal bind allowed, INADDR_ANY, or an address whose
        type is local, multicast or broadcast; else EADDRNOTAVAIL."""
        rtype = self.host.inet_addr_type(addr, self.profile.network_address_broadcast)
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
        if sk.proto is Proto.UDP:
            # errno 95, which Python's errno.errorcode (and so every value here) names ENOTSUP
            return Outcome(errno.errorcode[errno.EOPNOTSUPP], "inet_dgram_ops / inet6_dgram_ops: "
                           ".listen is sock_no_listen: -EOPNOTSUPP")
        if backlog > self.sysctls.somaxconn or backlog < 0:
            backlog = self.sysctls.somaxconn  # __sys_listen: (unsigned)backlog > somaxconn
        if sk.state not in (TcpState.CLOSE, TcpState.LISTEN):
            return Outcome("EINVAL", f"__inet_listen_sk: {sk.name} is {sk.state.value}")
        sk.max_ack_backlog = backlog
        if sk.state == TcpState.LISTEN:
            return Outcome("0", f"__inet_listen_sk: already listening; backlog now {backlog}")
        # inet_csk_listen_start: LISTEN first, then get_port re-validates the port
        sk.state = TcpState.LISTEN
        self._touch(sk)
        err, candidates, why = self._get_port(sk, sk.num, choice)
        if err:
            sk.state = TcpState.CLOSE  # inet_sk_set_state(sk, TCP_CLOSE)
            self._touch(sk)
            return Outcome(
                err.value, f"inet_csk_listen_start: get_port failed: {err.reason}",
                candidates=err.candidates, random=err.random,
            )
        # shutdown() with tcp_migrate_req kept sk in its group's closed section: __inet_hash ->
        # reuseport_add_sock / reuseport_alloc -> reuseport_resurrect
        resurrected = sk.reuseport_cb is not None and sk in sk.reuseport_cb.closed
        hash_err = self.listens.inet_hash(sk)
        self._touch(sk)  # a port bind() did not take is taken now
        if hash_err:
            sk.state = TcpState.CLOSE
            return Outcome(hash_err, "__inet_hash: inet_reuseport_add_sock: sk is already in a "
                           "group with other members")
        sk.sport = sk.num  # inet_csk_listen_start: inet->inet_sport = htons(inet->inet_num)
        reason = f"inet_csk_listen_start: {self._bound_reason(why, candidates)}"
        if sk.reuseport_cb is not None:
            group = sk.reuseport_cb
            reason += f"; reuseport group slot {group.socks.index(sk)} of {group.num_socks}"
            if resurrected:
                reason += " (reuseport_resurrect: back from the closed section shutdown() left it in)"
        return Outcome("0", reason, candidates=candidates, random=self.search_may_fail)

    def close(self, fd: int) -> Outcome:
        """close(): tcp_close. A listener resets its queued children (inet_csk_listen_stop) and
        is unhashed; a connection sends its FIN and, closing first, becomes a TIME_WAIT socket
        (tcp_time_wait; FIN_WAIT2 substate until the peer's FIN); closing second, it is gone
        once the peer ACKs (LAST_ACK -> CLOSE). The port is released (inet_put_port)."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        if sk.proto is Proto.UDP:
            return self._udp_close(sk)
        was = sk.state
        port = sk.num
        what = ""
        if sk.state == TcpState.LISTEN:
            what = self._listen_stop(sk)
        elif sk.linger_abort and sk.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT,
                                              TcpState.FIN_WAIT1, TcpState.FIN_WAIT2):
            # tcp_close: SOCK_LINGER and !sk_lingertime -> tcp_disconnect: a RST (tcp_need_reset),
            # no FIN, no TIME_WAIT; the socket is destroyed and its port released
            self._abort(sk)
            what = "; SO_LINGER {1, 0}: tcp_disconnect sends a RST, no TIME_WAIT"
        elif sk.state in (TcpState.ESTABLISHED, TcpState.FIN_WAIT2):
            what = self._active_close(sk)
        elif sk.state == TcpState.FIN_WAIT1:
            # an orphan waiting for its FIN's ACK (tcp_close: FIN_WAIT1 -> FIN_WAIT1), which an
            # injected client never sends; its children copy the harness's SO_LINGER {1, 0}
            return Outcome("UNMODELLED", f"tcp_close of {sk.name} in FIN_WAIT1 without SO_LINGER "
                           "{1, 0}: an orphan until tcp_orphan_retries")
        elif sk.state == TcpState.CLOSE_WAIT:
            what = self._passive_close(sk)
        elif sk.state == TcpState.SYN_SENT:
            self._unhash_conn(sk)
        if sk.reuseport_cb is not None and not sk.syn_queue:
            # the group leaves with the socket (sk_destruct -> reuseport_detach_sock): at once,
            # unless request sockets still hold the closed listener
            reuseport_detach_sock(sk)
        sk.state = TcpState.CLOSE
        self._touch(sk)
        if sk.bind_hash is not None:
            self._put_port(sk)
        sk.fd_closed = True
        released = f"released port {port}" if port else "was not bound"
        return Outcome("0", f"tcp_close: {sk.name} ({was.value}) {released}{what}")

    def _udp_close(self, sk: Sock) -> Outcome:
        """close(): udp_lib_close -> sk_common_release -> udp_lib_unhash: the port released."""
        port = sk.num
        hashed = self.udp.remove(sk)
        sk.fd_closed = True
        released = f"released port {port}" if hashed else "was not bound"
        return Outcome("0", f"udp_lib_close: {sk.name} {released}")

    def connect(self, fd: int, addr: SockAddr, choice: int | None = None) -> Outcome:
        """connect(): a TCP socket's is Connections.connect; a UDP socket's _udp_connect."""
        sk = self._sock(fd)
        if sk is None or sk.proto is not Proto.UDP:
            return super().connect(fd, addr, choice)
        return self._udp_connect(fd, addr, choice)

    def _udp_connect(self, fd: int, addr: SockAddr, choice: int | None) -> Outcome:
        """inet_dgram_connect -> udp_connect / ip4_datagram_connect, IPv4 (the parser takes
        no other): an unbound socket is autobound first (inet_autobind: get_port(sk, 0), else
        EAGAIN); __ip4_datagram_connect sets the peer, takes the route's source for a wildcard
        address (and rehashes: udp_lib_rehash moves it to that address's slot and out of its
        group), marks its group as having connections (reuseport_has_conns_set), and makes it
        TCP_ESTABLISHED; udp4_hash4 (profile udp_hash4) then hashes the 4-tuple and takes it
        out of its group (udp_lib_hash4)."""
        sk = self.socks[fd]
        self.search_random = self.search_may_fail = False
        host = addr.host
        assert isinstance(host, ipaddress.IPv4Address) and sk.family == AF_INET
        parts = []
        candidates = None
        if not sk.num:
            err, candidates, why = self._get_port(sk, 0, choice)
            if err:
                return Outcome("EAGAIN", f"inet_dgram_connect: inet_autobind: {err.reason}",
                               candidates=err.candidates, random=err.random)
            sk.sport = sk.num  # inet_autobind: inet->inet_sport = htons(inet->inet_num)
            parts.append(f"inet_autobind: {self._bound_reason(why, candidates)}")
        src = self.host.route_src(host)
        if src is None:
            return Outcome("ENETUNREACH", f"__ip4_datagram_connect: ip_route_connect: no route to {host}")
        sk.daddr, sk.dport = host, addr.port
        if not sk.rcv_saddr:
            old = hash2_key(sk)
            sk.rcv_saddr = int(src)
            self.udp.move_slot(sk, old)
            parts.append(f"the route's source {src}: udp_lib_rehash to its slot")
            if sk.reuseport_cb is not None:
                group = sk.reuseport_cb
                reuseport_detach_sock(sk)
                parts.append(f"out of its group (now {group.describe()})")
        if sk.reuseport_cb is not None:
            sk.reuseport_cb.has_conns = True  # reuseport_has_conns_set
            parts.append(f"group {sk.reuseport_cb.describe()} has connections")
        sk.state = TcpState.ESTABLISHED
        if self.profile.udp_hash4 and sk.rcv_saddr:
            self.udp.hash4(sk)
            if sk.reuseport_cb is not None:
                group = sk.reuseport_cb
                reuseport_detach_sock(sk)  # udp_lib_hash4
                parts.append(f"udp_lib_hash4: out of its group (now {group.describe()})")
            else:
                parts.append("udp_lib_hash4: in the 4-tuple hash")
        how = "; ".join(parts)
        return Outcome("0", f"__ip4_datagram_connect: {sk.name} to {host}:{addr.port}" + (f"; {how}" if how else ""),
                       candidates=candidates, random=self.search_may_fail)

    def linger_abort(self, fd: int) -> None:
        """setsockopt(SO_LINGER, {1, 0}) (sk_setsockopt: sock_set_flag(SOCK_LINGER),
        sk_lingertime 0), which the harness does to every listener of a scenario with injected
        steps so that its sweep's closes are aborts; children copy it (sk_clone_lock)."""
        sk = self._sock(fd)
        if sk is not None:
            sk.linger_abort = True

    def shutdown(self, fd: int) -> Outcome:
        """shutdown(SHUT_RDWR): inet_shutdown. A listener is disconnected (tcp_disconnect ->
        inet_csk_listen_stop) like a close but keeps its descriptor, and its port if bind()
        chose it; a connection sends its FIN (tcp_shutdown); an unconnected socket (or one
        whose connection ended) is ENOTCONN."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        if sk.state == TcpState.CLOSE:
            return Outcome("ENOTCONN", f"inet_shutdown: {sk.name} is not connected (TCP_CLOSE)")
        if sk.state in (TcpState.ESTABLISHED, TcpState.CLOSE_WAIT):
            return Outcome("0", f"inet_shutdown -> tcp_shutdown: {sk.name} {self._shutdown_connection(sk)}")
        if sk.state in (TcpState.FIN_WAIT1, TcpState.FIN_WAIT2):
            return Outcome("0", f"inet_shutdown -> tcp_shutdown: {sk.name} ({sk.state.value}) sent its "
                           "FIN already: nothing to do")
        if sk.state != TcpState.LISTEN:
            return Outcome("UNMODELLED", f"inet_shutdown of a {sk.state.value} socket is not modelled")
        what = self._listen_stop(sk)
        sk.synq_overflow = False  # tcp_disconnect: memset(&tp->rx_opt, 0, sizeof(tp->rx_opt))
        sk.state = TcpState.CLOSE
        self._touch(sk)
        if sk.bind_hash is not None and not sk.userlocks & SOCK_BINDPORT_LOCK:
            self._put_port(sk)  # tcp_set_state(TCP_CLOSE)
        return Outcome("0", f"inet_shutdown -> tcp_disconnect: {sk.name} stops listening{what}")

    def getsockname(self, fd: int) -> Outcome:
        """inet_getname / inet6_getname: the bound address and port."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        # inet_getname / inet6_getname: the address and inet_sport
        return Outcome(sk.local_text(sk.sport), f"inet_getname: {sk.name}", random=sk.autobound)

    def inuse(self, family: int = AF_INET, proto: Proto = Proto.TCP) -> Outcome:
        """sock_prot_inuse_get(net, &tcp_prot or &tcpv6_prot): listeners plus established
        sockets of that family (a child counts with its listener's); of &udp_prot or
        &udpv6_prot: the bound UDP sockets."""
        if proto is Proto.UDP:
            n = self.udp.inuse[family]
            name = "UDP6" if family == AF_INET6 else "UDP"
            return Outcome(str(n), f"sock_prot_inuse_add: {name}: {n} bound socket(s) in this "
                           "namespace (udp_lib_get_port hashes them, udp_lib_unhash removes them)")
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

    @staticmethod
    def _bound_reason(why: str, candidates: PortChoice | None) -> str:
        if candidates is not None:
            return f"{why}, from {candidates.describe()}"
        return why


# Calls that change no listener (they read the listening tables, or change children, requests
# and counters only): the listener lookups they plan stay valid. Every other public call of
# Kernel forgets them, before and after (model/lookup.py:Lookup.listener), so a call added
# later is safe by default.
KEEPS_LOOKUP_PLANS = frozenset({"syn", "syn_only", "ack", "sweep", "inuse", "queue", "getsockname", "tw",
                                "closed_fd", "linger_abort", "dgram"})


def _forgetting(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def call(self: Kernel, *args, **kwargs):
        self.lookup.forget()
        try:
            return fn(self, *args, **kwargs)
        finally:
            self.lookup.forget()
    return call


for _name in dir(Kernel):
    if not _name.startswith("_") and _name not in KEEPS_LOOKUP_PLANS and callable(getattr(Kernel, _name)):
        setattr(Kernel, _name, _forgetting(getattr(Kernel, _name)))


def _no_map(name: str) -> Outcome:
    """A map command on a map whose sockarray() failed: no map behind the fd
    (kernel/bpf/syscall.c: __bpf_map_get's -EBADF)."""
    return Outcome("EBADF", f"map {name} was not created")
