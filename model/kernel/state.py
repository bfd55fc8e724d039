"""The state every part of model.kernel.Kernel works on: one network namespace's tables and
counters, and the helpers all the system calls share (a socket by descriptor, EBADF, the pick
of a port search). The base of connections.py <- handshakes.py <- sockets.py."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from model.bind import BindTables
from model.connect import ConnectSearch, ConnKey, EHash
from model.ebpf import SockArray
from model.ephemeral import PortFinder, VerdictCache
from model.host import Host
from model.listen import ListenTables
from model.lookup import Hashes6, Lookup
from model.outcome import Outcome, PortChoice
from model.profiles import Profile
from model.sock import Sock
from model.sysctl import Sysctls
from model.udp import UdpTable
from model.udp_lookup import UdpLookup


@dataclass
class KernelState:
    """A namespace's TCP and UDP socket tables under one profile and set of sysctls.

    hash_secret: inet_ehash_secret + net_hash_mix of the namespace (calibrated); None when
    unknown, and then reuseport picks by hash are predicted as 'one of the group'.
    hashes6: inet6_ehashfn of IPv6 tuples as the namespace's kernel computed them (model.lookup:
    Hashes6); a tuple not in it is predicted as 'one of the group'.
    """

    profile: Profile
    host: Host
    sysctls: Sysctls = field(default_factory=Sysctls)
    seed: int = 0
    hash_secret: int | None = None
    udp_secret: int | None = None  # udp_ehash_secret + net_hash_mix (calibrated), or None
    udp_hashes6: Hashes6 = field(default_factory=dict)  # udp6_ehashfn as the kernel computed it
    hashes6: Hashes6 = field(default_factory=dict)
    cpu: int = 0  # the CPU the harness runs system calls on (loopback SYNs arrive there)
    socks: list[Sock] = field(default_factory=list)
    binds: BindTables = field(default_factory=BindTables)
    listens: ListenTables = field(default_factory=ListenTables)
    maps: dict[str, SockArray] = field(default_factory=dict)  # REUSEPORT_SOCKARRAY maps by name
    udp: UdpTable = field(default_factory=UdpTable)  # bound UDP sockets and their inuse counters

    def __post_init__(self) -> None:
        self.binds.rules = self.profile.bind
        self._rng = random.Random(self.seed)
        self.lookup = Lookup(self.listens, self.hash_secret, self.profile.ehash_lport_outside,
                             self.profile.reuseport_incoming_cpu, self.hashes6)
        self.udp_lookup = UdpLookup(self.udp, self.udp_secret, self.profile.reuseport_incoming_cpu,
                                    self.udp_hashes6)
        self._seen: dict[tuple, Sock] = {}  # tuple -> socket, where the pick was not predicted
        # ehash: connected, child and TIME_WAIT sockets by their 4-tuple (inet_match)
        self.ehash: dict[ConnKey, Sock] = EHash(self.binds.touch)
        # the port searches, with what they learnt of which ports are taken
        self.port_finder = PortFinder(self.binds, self.sysctls, VerdictCache(self.binds))
        self.connect_search = ConnectSearch(self.binds, VerdictCache(self.binds))
        self.injected = 0  # children of injected SYNs not yet swept
        self.unswept = 0  # syn steps whose listener the harness learns only by a sweep
        self.half_open: dict[ConnKey, str] = {}  # what each syn_only got (SYNACK, COOKIE, ...)
        # a listener or migration was picked by the namespace's hash (or guessed for it), or a
        # cookie's fate by the kernel's clock (tcp_synq_no_recent_overflow of a stamp 0): what
        # depends on the pick differs between namespaces, so it is compared with this kernel
        # but never recorded as an expectation
        self.hash_dependent = False
        self.tw_count = 0  # tcp_death_row.tw_refcount - 1: what sockstat calls "tw"
        self.random_picks = 0  # port searches with more than one possible result so far
        self.search_random = False  # the last port search's port depends on chance
        self.search_may_fail = False  # ... and whether it found one at all

    def _sock(self, fd: int) -> Sock | None:
        """The open socket behind fd, or None (EBADF)."""
        if 0 <= fd < len(self.socks) and not self.socks[fd].fd_closed:
            return self.socks[fd]
        return None

    def _ebadf(self, fd: int) -> Outcome:
        name = self.socks[fd].name if 0 <= fd < len(self.socks) else str(fd)
        return Outcome("EBADF", f"fdget: {name}'s descriptor was closed")

    def _follow(self, key: tuple, one_of: tuple[Sock, ...], choice: str | None,
                reason: str) -> tuple[Sock, str]:
        """The member a pick the model cannot compute went to: for a tuple seen before, the
        same one (the hash is the same); else the kernel's `choice` if it is a member, else a
        seeded one."""
        seen_key = (key, tuple(s.name for s in one_of))
        seen = self._seen.get(seen_key)
        if seen is not None and seen in one_of:
            return seen, reason + f"; the same tuple went to {seen.name} before"
        names = {s.name: s for s in one_of}
        sk = names[choice] if choice in names else self._rng.choice(one_of)
        self._seen[seen_key] = sk
        return sk, reason

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
        options: Sequence[int | None] = candidates.ports
        if candidates.may_fail:
            options = _OrNone(candidates.ports)
        return self._rng.choice(options)


class _OrNone(Sequence):
    """A search's ports and then None (it may also find none), as random.choice reads them:
    the same draw as from list(ports) + [None], without listing the ports."""

    def __init__(self, ports: Sequence[int]):
        self.ports = ports

    def __len__(self) -> int:
        return len(self.ports) + 1

    def __getitem__(self, i):  # type: ignore[override]
        return None if i == len(self.ports) else self.ports[i]
