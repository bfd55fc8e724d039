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

from model.addr import SockAddr
from model.bind import BindTables, inet_csk_get_port
from model.ephemeral import PortFinder
from model.host import Host, RouteType
from model.listen import ListenTables
from model.lookup import Lookup, Syn
from model.outcome import Outcome, PortChoice
from model.profiles import Profile
from model.sock import (
    IN6ADDR_ANY,
    LOOPBACK4_IPV6,
    SOCK_BINDADDR_LOCK,
    SOCK_BINDPORT_LOCK,
    AddrType,
    Sock,
    TcpState,
    ipv6_addr_type,
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
    socks: list[Sock] = field(default_factory=list)
    binds: BindTables = field(default_factory=BindTables)
    listens: ListenTables = field(default_factory=ListenTables)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self.lookup = Lookup(self.listens, self.hash_secret, self.profile.ehash_lport_outside)
        self._seen: dict[tuple, Sock] = {}  # tuple -> socket, where the pick was not predicted
        self._established: dict[tuple, Sock] = {}  # queued children by 4-tuple -> listener

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
            if candidates is None:
                return None
            if choice is not None and choice in candidates:
                return choice
            return self._rng.choice(candidates.ports)

        res = inet_csk_get_port(self.binds, sk, snum, find_open_port)
        if res.error:
            return Outcome(res.error, res.reason, candidates=candidates), candidates, res.reason
        if not snum:
            sk.autobound = True
        return None, candidates, res.reason

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

    def setsockopt(self, fd: int, opt: SockOpt, value: OptValue) -> Outcome:
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        hashed = sk.state == TcpState.LISTEN
        err, reason = setsockopt(sk, opt, value, self.host.ifindex, hashed)
        return Outcome(err, reason)

    def bind(self, fd: int, addr: SockAddr, choice: int | None = None) -> Outcome:
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        if sk.family == AF_INET6:
            return self._bind6(sk, addr, choice)
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
            return Outcome("0", "__inet_bind: IP_BIND_ADDRESS_NO_PORT: address only, no port yet")
        err, candidates, why = self._get_port(sk, snum, choice)
        if err:
            sk.rcv_saddr = 0  # inet->inet_saddr = inet->inet_rcv_saddr = 0
            return err
        if sk.rcv_saddr:
            sk.userlocks |= SOCK_BINDADDR_LOCK
        if snum:
            sk.userlocks |= SOCK_BINDPORT_LOCK
        return Outcome("0", self._bound_reason(why, candidates), candidates=candidates)

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
        return Outcome("0", self._bound_reason(why, candidates), candidates=candidates)

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
                candidates=err.candidates,
            )
        hash_err = self.listens.inet_hash(sk)
        if hash_err:
            sk.state = TcpState.CLOSE
            return Outcome(hash_err, "__inet_hash: inet_reuseport_add_sock: sk is already in a "
                           "group with other members")
        reason = f"inet_csk_listen_start: {self._bound_reason(why, candidates)}"
        if sk.reuseport_cb is not None:
            group = sk.reuseport_cb
            reason += f"; reuseport group slot {group.socks.index(sk)} of {group.num_socks}"
        return Outcome("0", reason, candidates=candidates)

    def close(self, fd: int) -> Outcome:
        """close(): tcp_close; a listener's queued children are reset (inet_csk_listen_stop),
        it is unhashed (tcp_set_state -> inet_unhash) and the port released (inet_put_port)."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        was = sk.state
        dropped = len(sk.accept_queue)
        if sk.state == TcpState.LISTEN:
            self.listens.inuse[sk.family] -= dropped  # inet_csk_listen_stop: children go
            for child in sk.accept_queue:
                del self._established[child]
            sk.accept_queue.clear()
            self.listens.inet_unhash(sk)
        if sk.reuseport_cb is not None:  # a group made by an attached program, never hashed
            from model.reuseport import reuseport_detach_sock

            reuseport_detach_sock(sk)
        sk.state = TcpState.CLOSE
        port = sk.num
        if sk.bind_hash is not None:
            self.binds.put_port(sk)
        sk.fd_closed = True
        what = f"released port {port}" if port else "was not bound"
        kids = f"; reset {dropped} queued connection(s)" if dropped else ""
        return Outcome("0", f"tcp_close: {sk.name} ({was.value}) {what}{kids}")

    def getsockname(self, fd: int) -> Outcome:
        """inet_getname / inet6_getname: the bound address and port."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        return Outcome(sk.local_text(), f"inet_getname: {sk.name}", random=sk.autobound)

    def inuse(self, family: int = AF_INET) -> Outcome:
        """sock_prot_inuse_get(net, &tcp_prot or &tcpv6_prot): listeners plus established
        sockets of that family (a child counts with its listener's)."""
        listeners = sum(1 for c in self.listens.lhash2.values() for s in c if s.family == family)
        n = self.listens.inuse[family]
        proto = "TCP6" if family == AF_INET6 else "TCP"
        return Outcome(str(n), f"sock_prot_inuse_add: {proto}: {listeners} listening socket(s) "
                       f"and {n - listeners} queued connection(s) in this namespace")

    def queue(self, fd: int) -> Outcome:
        """sk_ack_backlog of a listener, as sock_diag reports it (idiag_rqueue)."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        return Outcome(str(len(sk.accept_queue)),
                       f"inet_sk_diag_fill: {sk.name} holds {len(sk.accept_queue)} of "
                       f"{sk.max_ack_backlog} + 1")

    def syn(self, syn: Syn, choice: str | None = None) -> Outcome:
        """A SYN, and the ACK completing its handshake: tcp_v4_rcv / tcp_v6_rcv look the
        listener up; tcp_conn_request drops the SYN when its accept queue is full."""
        if not self.host.is_local(syn.dst):
            return Outcome("DROP", f"ip_route_input: {syn.dst} is not a local address")
        key = (syn.src, syn.sport, syn.dst, syn.dport)
        owner = self._established.get(key)
        if owner is not None:
            # tcp_v4_rcv looks up established sockets first (__inet_lookup_established); a SYN
            # on one gets a challenge ACK (tcp_validate_incoming), not a SYN-ACK
            return Outcome("DROP", f"__inet_lookup_established: {key} is a connection queued on "
                           f"{owner.name}; tcp_validate_incoming answers a SYN with a challenge ACK")
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
            return Outcome("RST", f"{reason}: tcp_v4_send_reset")
        if len(sk.accept_queue) > sk.max_ack_backlog:  # sk_acceptq_is_full
            return Outcome("DROP", f"{reason}; tcp_conn_request: {sk.name}'s accept queue is "
                           f"full ({len(sk.accept_queue)} > backlog {sk.max_ack_backlog})")
        sk.accept_queue.append(key)
        self._established[key] = sk
        self.listens.inuse[sk.family] += 1  # inet_ehash_nolisten: the child counts
        # A pick by hash depends on the namespace's secret: exact against this kernel, but no
        # value to record for another namespace (random=True keeps it out of expectations).
        # Where the model could only name the group (one_of), the check is by property: a
        # member of the group, and for a tuple seen before, the same socket.
        return Outcome(sk.name, reason, one_of=tuple(s.name for s in one_of),
                       random=bool(one_of) or found.hashed)

    def sweep(self) -> int:
        """accept() every queued child and reset it (what the harness does between batches)."""
        if not self._established:  # nothing queued: the common case, before every setup step
            return 0
        n = 0
        for sk in self.socks:
            n += len(sk.accept_queue)
            self.listens.inuse[sk.family] -= len(sk.accept_queue)
            sk.accept_queue.clear()
        self._established.clear()
        return n

    @staticmethod
    def _bound_reason(why: str, candidates: PortChoice | None) -> str:
        if candidates is not None:
            return f"{why}, from {candidates.describe()}"
        return why
