"""The model's system-call surface: one network namespace, driven like the real kernel.

Pure: no I/O, no clock; the only randomness is the seeded choice of an ephemeral port, and a
caller that knows the real kernel's choice passes it in (`choice=`) so both stay in step.
Every call returns an Outcome whose reason names the kernel function and rule that decided.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass, field

from model.addr import SockAddr
from model.bind import BindTables, inet_csk_get_port
from model.ephemeral import PortFinder
from model.host import Host, RouteType
from model.listen import ListenTables
from model.outcome import Outcome, PortChoice
from model.profiles import Profile
from model.sock import SOCK_BINDADDR_LOCK, SOCK_BINDPORT_LOCK, Sock, TcpState
from model.sockopt import SockOpt, setsockopt
from model.sysctl import Sysctls


@dataclass
class Kernel:
    """A namespace's TCP socket tables under one profile and set of sysctls."""

    profile: Profile
    host: Host
    sysctls: Sysctls = field(default_factory=Sysctls)
    seed: int = 0
    socks: list[Sock] = field(default_factory=list)
    binds: BindTables = field(default_factory=BindTables)
    listens: ListenTables = field(default_factory=ListenTables)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

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
        """socket(): inet_create; the inode uid (sock_i_uid) is the caller's fsuid."""
        sk = Sock(name=name, family=family, uid=uid)
        self.socks.append(sk)
        return len(self.socks) - 1, Outcome("0", f"inet_create: {name} uid {uid}")

    def setsockopt(self, fd: int, opt: SockOpt, value: int) -> Outcome:
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        return Outcome("0", setsockopt(sk, opt, value))

    def bind(self, fd: int, addr: SockAddr, choice: int | None = None) -> Outcome:
        """inet_bind -> __inet_bind, checks in the kernel's order."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        if addr.family != socket.AF_INET:
            return Outcome("EAFNOSUPPORT", "__inet_bind: sin_family is not AF_INET")
        host = addr.host
        assert isinstance(host, ipaddress.IPv4Address)
        rtype = self.host.inet_addr_type(host)
        # inet_addr_valid_or_nonlocal: nonlocal_bind, INADDR_ANY, local, multicast, broadcast
        if not (
            self.sysctls.ip_nonlocal_bind
            or int(host) == 0
            or rtype in (RouteType.LOCAL, RouteType.MULTICAST, RouteType.BROADCAST)
        ):
            return Outcome(
                "EADDRNOTAVAIL",
                f"__inet_bind: inet_addr_type({host}) is {rtype.value}, not local "
                "(inet_addr_valid_or_nonlocal)",
            )
        snum = addr.port
        # inet_port_requires_bind_service && !ns_capable(CAP_NET_BIND_SERVICE): the harness
        # calls with the socket's uid as euid, and only uid 0 has the capability.
        if snum and snum < self.sysctls.ip_unprivileged_port_start and sk.uid != 0:
            return Outcome(
                "EACCES",
                f"__inet_bind: port {snum} < ip_unprivileged_port_start "
                f"{self.sysctls.ip_unprivileged_port_start} and uid {sk.uid} lacks "
                "CAP_NET_BIND_SERVICE",
            )
        if sk.state != TcpState.CLOSE or sk.num:
            what = f"already bound to port {sk.num}" if sk.num else f"in state {sk.state.value}"
            return Outcome("EINVAL", f"__inet_bind: {sk.name} is {what}")
        sk.rcv_saddr = int(host)
        err, candidates, why = self._get_port(sk, snum, choice)
        if err:
            sk.rcv_saddr = 0  # inet->inet_saddr = inet->inet_rcv_saddr = 0
            return err
        if sk.rcv_saddr:
            sk.userlocks |= SOCK_BINDADDR_LOCK
        if snum:
            sk.userlocks |= SOCK_BINDPORT_LOCK
        return Outcome("0", self._bound_reason(why, candidates), candidates=candidates)

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
        self.listens.inet_hash(sk)
        reason = f"inet_csk_listen_start: {self._bound_reason(why, candidates)}"
        if sk.reuseport_cb is not None:
            group = sk.reuseport_cb
            reason += f"; reuseport group slot {group.socks.index(sk)} of {group.num_socks}"
        return Outcome("0", reason, candidates=candidates)

    def close(self, fd: int) -> Outcome:
        """close(): tcp_close; a listener is unhashed (tcp_set_state -> inet_unhash) and the
        port released (inet_put_port from tcp_set_state or tcp_v4_destroy_sock)."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        was = sk.state
        if sk.state == TcpState.LISTEN:
            self.listens.inet_unhash(sk)
        sk.state = TcpState.CLOSE
        port = sk.num
        if sk.bind_hash is not None:
            self.binds.put_port(sk)
        sk.fd_closed = True
        what = f"released port {port}" if port else "was not bound"
        return Outcome("0", f"tcp_close: {sk.name} ({was.value}) {what}")

    def getsockname(self, fd: int) -> Outcome:
        """inet_getname: the bound address and port (0.0.0.0:0 when unbound)."""
        sk = self._sock(fd)
        if sk is None:
            return self._ebadf(fd)
        text = f"{ipaddress.IPv4Address(sk.rcv_saddr)}:{sk.num}"
        return Outcome(text, f"inet_getname: {sk.name}", random=sk.autobound)

    def inuse(self) -> Outcome:
        """sock_prot_inuse_get(net, &tcp_prot): listeners plus established sockets."""
        listeners = sum(len(c) for c in self.listens.lhash2.values())
        return Outcome(
            str(self.listens.inuse),
            f"sock_prot_inuse_add: {listeners} listening socket(s) in this namespace",
        )

    @staticmethod
    def _bound_reason(why: str, candidates: PortChoice | None) -> str:
        if candidates is not None:
            return f"{why}, from {candidates.describe()}"
        return why
