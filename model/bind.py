"""Bind buckets and the bind conflict rules (net/ipv4/inet_connection_sock.c, inet_hashtables.c).

The kernel keeps two tables: bhash, a bucket per (net, port, l3mdev) holding the fast-path
summary (fastreuse, fastreuseport, fastuid), and bhash2, a bucket per (port, l3mdev, address)
holding the owners. inet_csk_get_port consults the fast path first and only then walks the
owners; results depend on that order (a stale fast path lets a bind through), so the model
follows it step by step.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from model.sock import SK_FORCE_REUSE, AddrType, Sock, TcpState, ipv6_addr_type

# tb->fastreuseport values (include/net/inet_hashtables.h)
FASTREUSEPORT_ANY = 1
FASTREUSEPORT_STRICT = 2


@dataclass(frozen=True)
class BindRules:
    """How a kernel's bind conflict check is built; each field is a version difference, True
    where that kernel has the code described. The defaults are 6.9+ (and 6.12, 6.18, 7.2).

    The 6.1-6.8 fields are the bhash2 regressions and their fixes (commit, first release):
    """

    # bhash2 exists (28044fc1d495, v6.1): a specific address checks the wildcard buckets and its
    # own bucket only. Before it, every bind walks all owners of the port with
    # inet_rcv_saddr_equal (5.10 inet_csk_bind_conflict).
    bhash2: bool = True
    # inet_bind2_bucket_match_addr_any: an AF_INET socket never matches an AF_INET6 bucket
    # (5456262d2baa's family test; fixed by d9ba99342855, v6.3-rc3 / 6.1.21).
    any_family_strict: bool = False
    # ... nor an AF_INET6 ::ffff:0.0.0.0 bucket (fixed by aa99e5f87bd5, v6.6-rc2 / 6.1.54).
    v4_misses_v4mapped_any: bool = False
    # inet_bind2_bucket_match: an AF_INET socket and an AF_INET6 v4-mapped socket of the same
    # address get separate buckets (fixed by c48ef9c4aed3, v6.6-rc2 / 6.1.54).
    v4_misses_v4mapped_addr: bool = False
    # inet_bhash2_addr_any_conflict stops at the first wildcard bucket that matches, conflict or
    # not (fixed by d91ef1e1b55f, v6.9-rc3 / 6.8.5 / 6.1.85).
    addr_any_first_match_only: bool = False
    # inet_use_hash2_on_bind sends a v4-mapped specific address to bhash2 (5e07e672412b, v6.8-rc1
    # / 6.1.168); before, v4-mapped addresses walked all owners.
    v4mapped_specific_uses_bhash2: bool = True
    # __inet_bhash2_conflict skips a v6-only owner only for an AF_INET socket, not for a
    # v4-mapped AF_INET6 one (fixed by ea111449501e, v6.9-rc3 / 6.8.5 / 6.1.168).
    v6only_skip_af_inet_only: bool = False
    # inet_bind2_bucket_match_addr_any: an AF_INET6 socket matches an AF_INET6 bucket only if it
    # is :: (so not ::ffff:0.0.0.0); mainline replaced this in v6.8-rc1 (06a8c04f8994), Debian's
    # 6.1.168+ backported 5e07e672412b without it (inet_hashtables.c:840 in 6.1.192).
    v6_misses_v4mapped_any: bool = False
    # inet_csk_update_fastreuse tests hlist_empty(&tb->owners), which inet_bind_hash fills only
    # after it: the port's first owner sets tb->fastreuse = reuse and FASTREUSEPORT_ANY (5.10,
    # and 6.1-6.7 where tb->owners still exists: Debian 6.1.192 inet_connection_sock.c:453).
    # Since 8002d44fe84d "tcp: Check hlist_empty(&tb->bhash2) instead of hlist_empty(&tb->owners)."
    # (v6.8-rc1) it tests tb->bhash2, which already holds sk's tb2 (822fb91fc724 "tcp: Link
    # bhash2 to bhash."), so fastreuse never becomes 1 and the first fastreuseport is STRICT.
    fastreuse_tests_owners: bool = False


@dataclass(eq=False)
class Bind2Bucket:
    """struct inet_bind2_bucket: sockets bound to one (port, l3mdev, address); an AF_INET
    address is held as ::ffff:a.b.c.d with addr_type MAPPED (inet_bind2_bucket_init)."""

    port: int
    l3mdev: int
    addr: ipaddress.IPv6Address  # v6_rcv_saddr
    addr_type: AddrType
    rcv_saddr: int  # the IPv4 address of a MAPPED bucket
    family: int = socket.AF_INET  # the family of the socket that created it (tb->family, 6.1-6.7)
    owners: list[Sock] = field(default_factory=list)  # sk_add_bind_node: head insertion
    # copies of tb's fast-path fields, -1 for a bucket connect() made (profile
    # connect_bind_reset: inet_csk_update_fastreuse, __inet_hash_connect)
    fastreuse: int = 0
    fastreuseport: int = 0

    def match_addr_any(self, sk: Sock, rules: BindRules) -> bool:
        """inet_bind2_bucket_match_addr_any: is this a wildcard bucket sk must check?"""
        if self.family != sk.family:
            if sk.family == socket.AF_INET:
                if rules.any_family_strict:
                    return False
                if rules.v4_misses_v4mapped_any and self.addr_type == AddrType.MAPPED:
                    return False
        elif sk.family == socket.AF_INET6 and rules.v6_misses_v4mapped_any:
            return self.addr_type == AddrType.ANY  # 6.1.192: return ipv6_addr_any(&tb->...)
        if self.addr_type == AddrType.ANY:
            return True
        if self.addr_type != AddrType.MAPPED:
            return False
        if sk.family == socket.AF_INET6 and ipv6_addr_type(sk.v6_rcv_saddr) != AddrType.MAPPED:
            return False
        return self.rcv_saddr == 0


@dataclass(eq=False)
class BindBucket:
    """struct inet_bind_bucket: one (port, l3mdev), its fast-path fields and its bhash2 list."""

    port: int
    l3mdev: int
    fastreuse: int = 0
    fastreuseport: int = 0
    fastuid: int = 0
    fast_rcv_saddr: int = 0
    fast_ipv6_only: bool = False
    fast_sk_family: int = 0
    fast_v6_rcv_saddr: ipaddress.IPv6Address | None = None
    bhash2: list[Bind2Bucket] = field(default_factory=list)  # hlist_add_head order

    def owners(self) -> Iterator[Sock]:
        """sk_for_each_bound_bhash: every socket of every tb2 on this port."""
        for tb2 in self.bhash2:
            yield from tb2.owners


@dataclass
class Conflict:
    """Why a bind conflicts: the socket it conflicts with and the rule that decided it."""

    other: Sock
    function: str
    rule: str

    def __str__(self) -> str:
        return f"{self.function}: conflicts with {self.other.describe()}: {self.rule}"


@dataclass
class BindTables:
    """The namespace's bhash and bhash2 tables (struct inet_hashinfo, bind half)."""

    bhash: dict[tuple[int, int], BindBucket] = field(default_factory=dict)
    bhash2: dict[tuple[int, int, int, int], Bind2Bucket] = field(default_factory=dict)
    rules: BindRules = field(default_factory=BindRules)
    # the port searches' caches (model.ephemeral.Verdicts): each set collects the ports whose
    # buckets, owners or 4-tuples changed, to be rechecked at its next search
    watchers: list[set[int]] = field(default_factory=list, repr=False, compare=False)

    def touch(self, port: int) -> None:
        """Something a port search reads about `port` changed."""
        for dirty in self.watchers:
            dirty.add(port)

    def ports(self) -> Iterator[int]:
        """The ports that have a bind bucket."""
        return (port for port, _ in self.bhash)

    def _key2(self, port: int, l3mdev: int, sk: Sock) -> tuple[int, int, int, int]:
        """inet_bind2_bucket_addr_match: the address (AF_INET as ::ffff:a.b.c.d, as an integer);
        the family too where AF_INET and v4-mapped AF_INET6 buckets stay apart
        (v4_misses_v4mapped_addr)."""
        addr = (0xFFFF << 32 | sk.rcv_saddr) if sk.family == socket.AF_INET else int(sk.v6_rcv_saddr)
        return port, l3mdev, addr, sk.family if self.rules.v4_misses_v4mapped_addr else 0

    def bucket(self, port: int, l3mdev: int) -> BindBucket | None:
        """inet_bind_bucket_for_each + inet_bind_bucket_match on the port's chain."""
        return self.bhash.get((port, l3mdev))

    def bucket2(self, port: int, l3mdev: int, sk: Sock) -> Bind2Bucket | None:
        """inet_bind2_bucket_find: the tb2 for sk's address (inet_bind2_bucket_addr_match)."""
        return self.bhash2.get(self._key2(port, l3mdev, sk))

    def addr_any_buckets(self, port: int, l3mdev: int, sk: Sock) -> Iterator[Bind2Bucket]:
        """inet_bhash2_addr_any_hashbucket + inet_bind2_bucket_match_addr_any: the wildcard
        buckets of the port. 0.0.0.0, :: and ::ffff:0.0.0.0 hash alike (ipv6_portaddr_hash of
        :: and of a mapped address reduce to ipv4_portaddr_hash), so all share one chain."""
        tb = self.bhash.get((port, l3mdev))
        for tb2 in tb.bhash2 if tb else ():
            if tb2.match_addr_any(sk, self.rules):
                yield tb2

    def create(self, port: int, l3mdev: int) -> BindBucket:
        """inet_bind_bucket_create: fastreuse and fastreuseport start at 0."""
        tb = BindBucket(port=port, l3mdev=l3mdev)
        self.bhash[(port, l3mdev)] = tb
        self.touch(port)
        return tb

    def create2(self, tb: BindBucket, sk: Sock) -> Bind2Bucket:
        """inet_bind2_bucket_create: linked at the head of tb->bhash2."""
        addr = sk.bind2_addr
        kind = ipv6_addr_type(addr) if sk.family == socket.AF_INET6 else AddrType.MAPPED
        tb2 = Bind2Bucket(tb.port, tb.l3mdev, addr, kind, sk.rcv_saddr, sk.family)
        self.bhash2[self._key2(tb.port, tb.l3mdev, sk)] = tb2
        tb.bhash2.insert(0, tb2)
        self.touch(tb.port)
        return tb2

    def destroy_if_empty(self, tb: BindBucket | None, tb2: Bind2Bucket | None,
                         connect_bind_reset: bool = False) -> None:
        """inet_bind2_bucket_destroy / inet_bind_bucket_destroy: freed once empty. With
        connect_bind_reset, a tb left with only connect()-made tb2s becomes connect()-only
        again (fastreuse = fastreuseport = -1), so connect() may share the port once more."""
        if tb2 is not None and not tb2.owners:
            self.touch(tb2.port)
            fam = tb2.family if self.rules.v4_misses_v4mapped_addr else 0
            self.bhash2.pop((tb2.port, tb2.l3mdev, int(tb2.addr), fam), None)
            if tb2 in self._tb_of(tb2).bhash2:
                self._tb_of(tb2).bhash2.remove(tb2)
        if tb is None:
            return
        if not tb.bhash2:
            self.bhash.pop((tb.port, tb.l3mdev), None)
            self.touch(tb.port)
        elif connect_bind_reset and not (tb.fastreuse == -1 and tb.fastreuseport == -1):
            if all(t.fastreuse == -1 and t.fastreuseport == -1 for t in tb.bhash2):
                tb.fastreuse = tb.fastreuseport = -1
                self.touch(tb.port)

    def _tb_of(self, tb2: Bind2Bucket) -> BindBucket:
        return self.bhash.get((tb2.port, tb2.l3mdev)) or BindBucket(tb2.port, tb2.l3mdev)

    def bind_hash(self, sk: Sock, tb: BindBucket, tb2: Bind2Bucket, port: int) -> None:
        """inet_bind_hash: sk takes the port and joins tb2's owners."""
        sk.num = port
        sk.bind_hash = tb
        sk.bind2_hash = tb2
        self.add_owner(tb2, sk)

    def add_owner(self, tb2: Bind2Bucket, sk: Sock) -> None:
        """sk_add_bind_node: at the head of tb2's owners."""
        tb2.owners.insert(0, sk)
        self.touch(tb2.port)

    def remove_owner(self, tb2: Bind2Bucket, sk: Sock) -> None:
        """__sk_del_bind_node."""
        tb2.owners.remove(sk)
        self.touch(tb2.port)

    def put_port(self, sk: Sock, connect_bind_reset: bool = False) -> None:
        """__inet_put_port: sk leaves its buckets; empty buckets are freed."""
        tb, tb2 = sk.bind_hash, sk.bind2_hash
        sk.bind_hash = None
        sk.num = 0
        if tb2 is not None:
            self.remove_owner(tb2, sk)
            sk.bind2_hash = None
        self.destroy_if_empty(tb, tb2, connect_bind_reset)

    def put_ports(self, socks: list[Sock], connect_bind_reset: bool = False) -> None:
        """put_port for many sockets at once (the harness's sweep aborts a batch of children):
        the same end state, with each bucket's owners rebuilt once instead of searched per
        socket."""
        gone: dict[int, tuple[BindBucket | None, Bind2Bucket, set[Sock]]] = {}
        for sk in socks:
            tb, tb2 = sk.bind_hash, sk.bind2_hash
            sk.bind_hash = sk.bind2_hash = None
            sk.num = 0
            if tb2 is None:
                self.destroy_if_empty(tb, None, connect_bind_reset)
                continue
            entry = gone.get(id(tb2))
            if entry is None:
                gone[id(tb2)] = (tb, tb2, {sk})
            else:
                entry[2].add(sk)
        for tb, tb2, leaving in gone.values():
            tb2.owners[:] = [s for s in tb2.owners if s not in leaving]
            self.touch(tb2.port)
            self.destroy_if_empty(tb, tb2, connect_bind_reset)


def inet_use_hash2_on_bind(sk: Sock, rules: BindRules) -> bool:
    """inet_use_hash2_on_bind (include/net/inet_hashtables.h): a specific address; none before
    bhash2, and a v4-mapped one only since 5e07e672412b (inet_use_bhash2_on_bind:
    addr_type != IPV6_ADDR_ANY && addr_type != IPV6_ADDR_MAPPED)."""
    if not rules.bhash2:
        return False
    if sk.family == socket.AF_INET6:
        kind = ipv6_addr_type(sk.v6_rcv_saddr)
        if kind == AddrType.ANY:
            return False
        if kind != AddrType.MAPPED:
            return True
        if not rules.v4mapped_specific_uses_bhash2:
            return False
    return sk.rcv_saddr != 0


def ipv4_rcv_saddr_equal(
    sk1_rcv_saddr: int, sk2_rcv_saddr: int, sk2_ipv6only: bool, match_sk1_wildcard: bool,
    match_sk2_wildcard: bool,
) -> bool:
    """ipv4_rcv_saddr_equal: same address, or a wildcard that is allowed to match."""
    if not sk2_ipv6only:
        if sk1_rcv_saddr == sk2_rcv_saddr:
            return True
        return (match_sk1_wildcard and not sk1_rcv_saddr) or (
            match_sk2_wildcard and not sk2_rcv_saddr
        )
    return False


def ipv6_rcv_saddr_equal(
    sk1_v6: ipaddress.IPv6Address, sk2_v6: ipaddress.IPv6Address | None, sk1_v4: int, sk2_v4: int,
    sk1_ipv6only: bool, sk2_ipv6only: bool, match_sk1_wildcard: bool, match_sk2_wildcard: bool,
) -> bool:
    """ipv6_rcv_saddr_equal (net/ipv4/inet_connection_sock.c); sk2_v6 None is an AF_INET sk2."""
    addr_type = ipv6_addr_type(sk1_v6)
    addr_type2 = ipv6_addr_type(sk2_v6) if sk2_v6 is not None else AddrType.MAPPED
    if addr_type == AddrType.MAPPED and addr_type2 == AddrType.MAPPED:  # both IPv4
        if not sk2_ipv6only:
            if sk1_v4 == sk2_v4:
                return True
            return (match_sk1_wildcard and not sk1_v4) or (match_sk2_wildcard and not sk2_v4)
        return False
    if addr_type == AddrType.ANY and addr_type2 == AddrType.ANY:
        return True
    if (addr_type2 == AddrType.ANY and match_sk2_wildcard
            and not (sk2_ipv6only and addr_type == AddrType.MAPPED)):
        return True
    if (addr_type == AddrType.ANY and match_sk1_wildcard
            and not (sk1_ipv6only and addr_type2 == AddrType.MAPPED)):
        return True
    return sk2_v6 is not None and sk1_v6 == sk2_v6


def inet_rcv_saddr_equal(sk: Sock, sk2: Sock, match_wildcard: bool) -> bool:
    """inet_rcv_saddr_equal: IPv6 rules for an AF_INET6 sk, IPv4 rules otherwise."""
    if sk.family == socket.AF_INET6:
        return ipv6_rcv_saddr_equal(
            sk.v6_rcv_saddr, sk2.v6, sk.rcv_saddr, sk2.rcv_saddr, sk.ipv6_only, sk2.ipv6_only,
            match_wildcard, match_wildcard,
        )
    return ipv4_rcv_saddr_equal(
        sk.rcv_saddr, sk2.rcv_saddr, sk2.ipv6_only, match_wildcard, match_wildcard
    )


def reuseport_cb_ok(sk: Sock) -> bool:
    """inet_csk_bind_conflict: !reuseport_cb || reuseport_cb->num_closed_socks."""
    return sk.reuseport_cb is None or sk.reuseport_cb.num_closed_socks > 0


def inet_bind_conflict(
    sk: Sock, sk2: Sock, uid: int, relax: bool, cb_ok: bool, reuseport_ok: bool
) -> str | None:
    """inet_bind_conflict: would sk and sk2 conflict on one port? Returns the rule, or None.

    Addresses are not compared here: the callers do that (by bucket or inet_rcv_saddr_equal).
    """
    if sk is sk2:
        return None
    if sk.bound_dev_if and sk2.bound_dev_if and sk.bound_dev_if != sk2.bound_dev_if:
        return None  # bound to different devices never conflict
    if sk.reuse and sk2.reuse and sk2.state != TcpState.LISTEN:
        # Both SO_REUSEADDR and the other is not listening: a conflict only when not relaxed
        # (the autobind scan), or in the reuseport check that the relaxed scan still applies.
        if not relax:
            return "both have SO_REUSEADDR but the port scan does not relax (relax=false)"
        if (
            not reuseport_ok and sk.reuseport and sk2.reuseport and cb_ok
            and (sk2.state == TcpState.TIME_WAIT or uid == sk2.uid)
        ):
            return "relaxed scan: both SO_REUSEPORT with the same uid (reuseport_ok=false)"
        return None
    if not reuseport_ok:
        return "the port scan does not accept SO_REUSEPORT sharing (reuseport_ok=false)"
    if not sk.reuseport or not sk2.reuseport:
        if sk.reuse and sk2.reuse:
            return f"{sk2.name} is LISTEN, and SO_REUSEADDR does not share with a listener"
        missing = [s.name for s in (sk, sk2) if not s.reuseport]
        return f"SO_REUSEPORT not set on {', '.join(missing)}"
    if not cb_ok:
        return f"{sk.name} is already in a listening reuseport group"
    if sk2.state != TcpState.TIME_WAIT and uid != sk2.uid:
        return f"SO_REUSEPORT on both, but uid {uid} != uid {sk2.uid}"
    return None


def inet_bhash2_conflict(
    sk: Sock, tb2: Bind2Bucket, uid: int, relax: bool, cb_ok: bool, reuseport_ok: bool,
    function: str, rules: BindRules,
) -> Conflict | None:
    """inet_bhash2_conflict: the first owner of tb2 that sk conflicts with
    (__inet_bhash2_conflict: a v6-only owner never conflicts with an AF_INET or v4-mapped sk;
    the v4-mapped half since ea111449501e)."""
    for sk2 in tb2.owners:
        if sk2.ipv6_only and (
            sk.family == socket.AF_INET
            or (not rules.v6only_skip_af_inet_only
                and ipv6_addr_type(sk.v6_rcv_saddr) == AddrType.MAPPED)
        ):
            continue
        rule = inet_bind_conflict(sk, sk2, uid, relax, cb_ok, reuseport_ok)
        if rule:
            return Conflict(sk2, function, rule)
    return None


def inet_csk_bind_conflict(
    sk: Sock, tb: BindBucket, tb2: Bind2Bucket | None, relax: bool, reuseport_ok: bool,
    rules: BindRules,
) -> Conflict | None:
    """inet_csk_bind_conflict: does sk conflict with any owner of tb/tb2?

    A specific address checks only its own tb2 (the wildcard buckets were checked already by
    inet_bhash2_addr_any_conflict); a wildcard walks every owner on the port and compares
    addresses with the wildcard matching anything.
    """
    uid = sk.uid
    cb_ok = reuseport_cb_ok(sk)
    fn = "inet_csk_bind_conflict"
    if inet_use_hash2_on_bind(sk, rules):
        if tb2 is None:
            return None
        return inet_bhash2_conflict(sk, tb2, uid, relax, cb_ok, reuseport_ok, fn, rules)
    for sk2 in tb.owners():
        rule = inet_bind_conflict(sk, sk2, uid, relax, cb_ok, reuseport_ok)
        if rule and inet_rcv_saddr_equal(sk, sk2, True):
            return Conflict(sk2, fn, rule)
    return None


def inet_bhash2_addr_any_conflict(
    tables: BindTables, sk: Sock, port: int, l3mdev: int, relax: bool, reuseport_ok: bool
) -> Conflict | None:
    """inet_bhash2_addr_any_conflict: a specific-address sk against the wildcard owners."""
    uid = sk.uid
    cb_ok = reuseport_cb_ok(sk)
    for tb2 in tables.addr_any_buckets(port, l3mdev, sk):
        c = inet_bhash2_conflict(
            sk, tb2, uid, relax, cb_ok, reuseport_ok, "inet_bhash2_addr_any_conflict", tables.rules
        )
        if c or tables.rules.addr_any_first_match_only:  # 6.1-6.8: the first match decides
            return c
    return None


def sk_reuseport_match(tb: BindBucket, sk: Sock) -> bool:
    """sk_reuseport_match: may sk skip the conflict walk on tb's SO_REUSEPORT fast path?"""
    if tb.fastreuseport <= 0:
        return False
    if not sk.reuseport:
        return False
    if sk.reuseport_cb is not None:
        return False
    if tb.fastuid != sk.uid:
        return False
    if tb.fastreuseport == FASTREUSEPORT_ANY:
        return True
    # FASTREUSEPORT_STRICT: the address must match the one recorded (wildcard on tb's side)
    if tb.fast_sk_family == socket.AF_INET6:
        assert tb.fast_v6_rcv_saddr is not None
        return ipv6_rcv_saddr_equal(
            tb.fast_v6_rcv_saddr, sk.v6, tb.fast_rcv_saddr, sk.rcv_saddr, tb.fast_ipv6_only,
            sk.ipv6_only, True, False,
        )
    return ipv4_rcv_saddr_equal(tb.fast_rcv_saddr, sk.rcv_saddr, sk.ipv6_only, True, False)


def inet_csk_update_fastreuse(tb: BindBucket, tb2: Bind2Bucket, sk: Sock,
                              rules: BindRules) -> None:
    """inet_csk_update_fastreuse: refresh tb's fast-path summary after sk took the port.

    It tests hlist_empty(&tb->bhash2), but inet_csk_get_port links sk's tb2 into tb->bhash2
    (inet_bind2_bucket_init) before calling it, so that list is never empty here since bhash2
    was linked to bhash: fastreuse is never set to 1 and fastreuseport starts STRICT. The model
    keeps the kernel's order, so it shows the same. Before that (rules.fastreuse_tests_owners)
    it tests tb->owners, still empty for a port's first owner (inet_bind_hash comes after).
    """
    reuse = bool(sk.reuse) and sk.state != TcpState.LISTEN
    empty = not any(tb.owners()) if rules.fastreuse_tests_owners else not tb.bhash2
    if empty:
        tb.fastreuse = int(reuse)
        if sk.reuseport:
            tb.fastreuseport = FASTREUSEPORT_ANY
            _record_fast(tb, sk)
        else:
            tb.fastreuseport = 0
    else:
        if not reuse:
            tb.fastreuse = 0
        if sk.reuseport:
            # No conflict was found, so later sockets matching this one may take the fast
            # path; STRICT because the owners' addresses are no longer all alike.
            if not sk_reuseport_match(tb, sk):
                tb.fastreuseport = FASTREUSEPORT_STRICT
                _record_fast(tb, sk)
        else:
            tb.fastreuseport = 0
    tb2.fastreuse, tb2.fastreuseport = tb.fastreuse, tb.fastreuseport


def _record_fast(tb: BindBucket, sk: Sock) -> None:
    tb.fastuid = sk.uid
    tb.fast_rcv_saddr = sk.rcv_saddr
    tb.fast_ipv6_only = sk.ipv6_only
    tb.fast_sk_family = sk.family
    tb.fast_v6_rcv_saddr = sk.v6_rcv_saddr


@dataclass
class PortResult:
    """What inet_csk_get_port decided: 0 or an errno name, the port, and why."""

    error: str | None
    port: int
    reason: str


def inet_sk_bound_l3mdev(sk: Sock) -> int:
    """inet_sk_bound_l3mdev: the L3 master (VRF) of the bound device; the standard topology
    has no VRF, so every socket is in l3mdev 0."""
    return 0


def inet_csk_get_port(
    tables: BindTables, sk: Sock, snum: int, find_open_port: Callable[[Sock], int | None]
) -> PortResult:
    """inet_csk_get_port: take port snum (or, for 0, one find_open_port picks) for sk."""
    reuse = bool(sk.reuse) and sk.state != TcpState.LISTEN
    l3mdev = inet_sk_bound_l3mdev(sk)
    port = snum
    if not port:
        picked = find_open_port(sk)
        if picked is None:
            return PortResult("EADDRINUSE", 0, "inet_csk_find_open_port: no free port in range")
        port = picked
        tb = tables.bucket(port, l3mdev)
        tb2 = tables.bucket2(port, l3mdev, sk)
        tb = tb or tables.create(port, l3mdev)
        tb2 = tb2 or tables.create2(tb, sk)
        _success(tables, tb, tb2, sk, port)
        return PortResult(None, port, f"inet_csk_find_open_port: picked port {port}")

    tb = tables.bucket(port, l3mdev)
    created = tb is None
    tb = tb or tables.create(port, l3mdev)
    check_bind_conflict = True
    why_fast = ""
    if tb.bhash2:
        if sk.reuse == SK_FORCE_REUSE:
            check_bind_conflict, why_fast = False, "SK_FORCE_REUSE"
        elif tb.fastreuse > 0 and reuse:
            check_bind_conflict, why_fast = False, "fast path: tb->fastreuse and SO_REUSEADDR"
        elif sk_reuseport_match(tb, sk):
            check_bind_conflict = False
            why_fast = f"fast path: sk_reuseport_match (fastuid {tb.fastuid})"
    if check_bind_conflict and inet_use_hash2_on_bind(sk, tables.rules):
        c = inet_bhash2_addr_any_conflict(tables, sk, port, l3mdev, True, True)
        if c:
            if created:
                tables.destroy_if_empty(tb, None)
            return PortResult("EADDRINUSE", port, str(c))
    tb2 = tables.bucket2(port, l3mdev, sk)
    created2 = tb2 is None
    tb2 = tb2 or tables.create2(tb, sk)
    if check_bind_conflict:
        c = inet_csk_bind_conflict(sk, tb, tb2, True, True, tables.rules)
        if c:
            tables.destroy_if_empty(tb, tb2 if created2 else None)
            return PortResult("EADDRINUSE", port, str(c))
    _success(tables, tb, tb2, sk, port)
    if why_fast:
        return PortResult(None, port, f"inet_csk_get_port: port {port} taken by the {why_fast}")
    if created:
        return PortResult(None, port, f"inet_csk_get_port: port {port} had no bind bucket")
    return PortResult(None, port, f"inet_csk_bind_conflict: no owner of port {port} conflicts")


def _success(tables: BindTables, tb: BindBucket, tb2: Bind2Bucket, sk: Sock, port: int) -> None:
    """inet_csk_get_port's success label: update the fast path, then hash sk if new."""
    inet_csk_update_fastreuse(tb, tb2, sk, tables.rules)
    tables.touch(port)  # connect()'s port search reads the fast path (port_usable)
    if sk.bind_hash is None:
        tables.bind_hash(sk, tb, tb2, port)
