"""Linux 3.9's listener selection, the first SO_REUSEPORT: every listener on the port is scored
and ties after a reuseport best are settled by a next_pseudo_random32 reservoir.

A historical model, pure (no I/O, clock or randomness beyond its inputs), kept apart from the
lhash2/sock_reuseport model of lookup.py. Every rule below was read in the Linux 3.9.6 tree of
github.com/opennetworklinux/linux-3.9.6 (Makefile: VERSION 3, PATCHLEVEL 9, SUBLEVEL 6; the
repository's history never touches the files named here, so they are the 3.9.6 release's).
TCP SO_REUSEPORT itself is mainline da5e36308d9f "soreuseport: TCP/IPv4 implementation" (3.9).
"""

from __future__ import annotations

import enum
import ipaddress
import socket
from dataclasses import dataclass, field

from model.jhash import JHASH_INITVAL, U32, jhash_final, port_word

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# net/ipv6/af_inet6.c:inet6_bind: a specific (non-mapped) IPv6 address leaves
# inet_rcv_saddr = LOOPBACK4_IPV6 (127.0.0.6) and sets np->ipv6only.
LOOPBACK4_IPV6 = ipaddress.IPv4Address("127.0.0.6")
INADDR_ANY = ipaddress.IPv4Address("0.0.0.0")
IN6ADDR_ANY = ipaddress.IPv6Address("::")


@dataclass(frozen=True)
class Kernel39:
    """What Linux 3.9 does where later kernels differ (docs/design.md, Kernel profiles); for comparison only."""

    name: str
    version: tuple[int, int]
    # net/ipv4/inet_hashtables.c:__inet_lookup_listener walks the whole listening_hash bucket
    # of the port (no lhash2, no struct sock_reuseport: those are 4.5/4.6 and 4.16).
    scores_every_listener: bool
    # the same: ties after a reuseport best go to a reservoir over next_pseudo_random32
    reservoir_next_pseudo_random32: bool
    # include/linux/jhash.h:jhash_3words of 3.9: a += JHASH_INITVAL, b += JHASH_INITVAL,
    # c += initval (not the later __jhash_nwords(a, b, c, initval + JHASH_INITVAL + (3 << 2))).
    jhash_3words_pre_nwords: bool
    # include/net/inet_sock.h:inet_ehashfn: lport << 16 | fport as the third word
    ehash_lport_outside: bool
    # net/ipv4/inet_connection_sock.c: no ip_autobind_reuse
    autobind_reuse: bool


LINUX_3_9 = Kernel39(name="3.9", version=(3, 9), scores_every_listener=True,
                     reservoir_next_pseudo_random32=True, jhash_3words_pre_nwords=True,
                     ehash_lport_outside=False, autobind_reuse=False)


class Family(enum.IntEnum):
    """sk_family."""

    INET = socket.AF_INET
    INET6 = socket.AF_INET6


class State39(enum.Enum):
    """The sk_state values 3.9's bind and lookup look at (include/net/tcp_states.h)."""

    CLOSE = "CLOSE"
    LISTEN = "LISTEN"
    ESTABLISHED = "ESTABLISHED"
    TIME_WAIT = "TIME_WAIT"


@dataclass(frozen=True)
class Sock39:
    """A TCP socket as 3.9's bind and listener lookup read it; addr is the bound address."""

    name: str
    family: Family
    addr: IPAddress
    port: int
    bound_dev_if: int = 0
    reuseport: bool = False  # sk_reuseport
    uid: int = 0  # sock_i_uid
    v6only: bool = False  # IPV6_V6ONLY before bind
    reuse: bool = False  # sk_reuse (SO_REUSEADDR)
    state: State39 = State39.LISTEN

    def __post_init__(self) -> None:
        if (self.family == Family.INET) != (self.addr.version == 4):
            raise ValueError(f"{self.name}: {self.addr} is not an address of {self.family.name}")

    def ipv6_only_sock(self) -> bool:
        """ipv6_only_sock: np->ipv6only, which inet6_bind also sets for a specific non-mapped
        address (net/ipv6/af_inet6.c:inet6_bind)."""
        if self.family != Family.INET6:
            return False
        assert isinstance(self.addr, ipaddress.IPv6Address)
        bound_specific = self.addr != IN6ADDR_ANY and self.addr.ipv4_mapped is None
        return self.v6only or bound_specific

    def rcv_saddr(self) -> ipaddress.IPv4Address:
        """inet_rcv_saddr: the IPv4 address; for AF_INET6 the mapped one, 0 for ::, else
        LOOPBACK4_IPV6 (net/ipv6/af_inet6.c:inet6_bind)."""
        if isinstance(self.addr, ipaddress.IPv4Address):
            return self.addr
        if self.addr == IN6ADDR_ANY:
            return INADDR_ANY
        return self.addr.ipv4_mapped or LOOPBACK4_IPV6


@dataclass(frozen=True)
class Syn39:
    """An incoming SYN: the 4-tuple and the ingress ifindex (dif)."""

    saddr: IPAddress
    sport: int
    daddr: IPAddress
    dport: int
    dif: int = 0

    @property
    def family(self) -> Family:
        return Family.INET6 if self.daddr.version == 6 else Family.INET


@dataclass(frozen=True)
class Lookup39:
    """The lookup's answer with its working: best score, how many tied, the first phash."""

    sk: Sock39 | None
    hiscore: int
    matches: int
    phash: int | None
    reason: str


# ---- hashes -------------------------------------------------------------------------------


def jhash_3words_39(a: int, b: int, c: int, initval: int) -> int:
    """jhash_3words as 3.9 has it: a and b offset by JHASH_INITVAL, c by initval alone."""
    # include/linux/jhash.h:jhash_3words (3.9.6); __jhash_final is the same as in model/jhash.py
    return jhash_final((a + JHASH_INITVAL) & U32, (b + JHASH_INITVAL) & U32, (c + initval) & U32)


def next_pseudo_random32(seed: int) -> int:
    """next_pseudo_random32: seed * 1664525 + 1013904223, in u32."""
    # include/linux/random.h:next_pseudo_random32 (3.9.6), "from numerical recipes"
    return (seed * 1664525 + 1013904223) & U32


def _le_word(packed: bytes) -> int:
    """Four network-order bytes as x86 loads them (a __be32 read as a u32)."""
    return int.from_bytes(packed, "little")


def inet_ehashfn_39(secret: int, laddr: ipaddress.IPv4Address, lport: int,
                    faddr: ipaddress.IPv4Address, fport: int) -> int:
    """inet_ehashfn: jhash_3words(laddr, faddr, lport << 16 | fport, secret); secret is
    inet_ehash_secret + net_hash_mix(net)."""
    # include/net/inet_sock.h:inet_ehashfn (3.9.6); lport is host order, fport a __be16
    third = ((lport << 16) | port_word(fport)) & U32
    return jhash_3words_39(_le_word(laddr.packed), _le_word(faddr.packed), third, secret)


def ipv6_addr_jhash_39(ipv6_secret: int, a: ipaddress.IPv6Address) -> int:
    """ipv6_addr_jhash: jhash_3words(s6_addr32[0] ^ [1], [2], [3], ipv6_hash_secret)."""
    # include/net/ipv6.h:ipv6_addr_jhash (3.9.6); ipv6_hash_secret: net/ipv4/af_inet.c
    w = [_le_word(a.packed[i:i + 4]) for i in range(0, 16, 4)]
    return jhash_3words_39(w[0] ^ w[1], w[2], w[3], ipv6_secret)


def inet6_ehashfn_39(secret: int, ipv6_secret: int, laddr: ipaddress.IPv6Address, lport: int,
                     faddr: ipaddress.IPv6Address, fport: int) -> int:
    """inet6_ehashfn: jhash_3words(laddr->s6_addr32[3], ipv6_addr_jhash(faddr), ports, secret)."""
    # include/net/inet6_hashtables.h:inet6_ehashfn (3.9.6)
    ports = ((lport << 16) | port_word(fport)) & U32
    return jhash_3words_39(_le_word(laddr.packed[12:16]), ipv6_addr_jhash_39(ipv6_secret, faddr),
                           ports, secret)


def reservoir_replaces(phash: int, matches: int) -> bool:
    """The reservoir's test: ((u64)phash * matches) >> 32 == 0, i.e. phash < 2^32 / matches."""
    # net/ipv4/inet_hashtables.c:__inet_lookup_listener (3.9.6)
    return ((phash & U32) * matches) >> 32 == 0


# ---- scoring and lookup -------------------------------------------------------------------


def compute_score_39(sk: Sock39, syn: Syn39) -> int:
    """compute_score of 3.9: -1 unless port, address and device fit; IPv4 lookups 2 for AF_INET
    else 1, +4 specific address, +4 bound device; IPv6 lookups 1, +1, +1."""
    if syn.family == Family.INET:
        # net/ipv4/inet_hashtables.c:compute_score (3.9.6); net_eq always holds here
        if sk.port != syn.dport or sk.ipv6_only_sock():
            return -1
        score = 2 if sk.family == Family.INET else 1
        rcv_saddr = sk.rcv_saddr()
        if rcv_saddr != INADDR_ANY:
            if rcv_saddr != syn.daddr:
                return -1
            score += 4
        if sk.bound_dev_if:
            if sk.bound_dev_if != syn.dif:
                return -1
            score += 4
        return score
    # net/ipv6/inet6_hashtables.c:compute_score (3.9.6)
    if sk.port != syn.dport or sk.family != Family.INET6:
        return -1
    score = 1
    if sk.addr != IN6ADDR_ANY:
        if sk.addr != syn.daddr:
            return -1
        score += 1
    if sk.bound_dev_if:
        if sk.bound_dev_if != syn.dif:
            return -1
        score += 1
    return score


def _phash(syn: Syn39, secret: int, ipv6_secret: int | None) -> int:
    """The first phash: inet_ehashfn / inet6_ehashfn of (daddr, hnum, saddr, sport)."""
    if syn.family == Family.INET:
        assert isinstance(syn.daddr, ipaddress.IPv4Address) and isinstance(syn.saddr, ipaddress.IPv4Address)
        return inet_ehashfn_39(secret, syn.daddr, syn.dport, syn.saddr, syn.sport)
    if ipv6_secret is None:
        raise ValueError("an IPv6 reuseport tie needs ipv6_hash_secret (inet6_ehashfn)")
    assert isinstance(syn.daddr, ipaddress.IPv6Address) and isinstance(syn.saddr, ipaddress.IPv6Address)
    return inet6_ehashfn_39(secret, ipv6_secret, syn.daddr, syn.dport, syn.saddr, syn.sport)


def lookup_39(listeners: list[Sock39], syn: Syn39, secret: int,
              ipv6_secret: int | None = None) -> Lookup39:
    """__inet_lookup_listener / inet6_lookup_listener of 3.9; listeners in listen() order."""
    for sk in listeners:
        if sk.state != State39.LISTEN:
            raise ValueError(f"{sk.name}: only TCP_LISTEN sockets are in listening_hash")
    fn = "__inet_lookup_listener" if syn.family == Family.INET else "inet6_lookup_listener"
    result, hiscore, matches, reuseport, phash = None, 0, 0, False, 0
    first_phash: int | None = None
    # __inet_hash / __inet6_hash add a listener at the head of listening_hash[inet_lhashfn(port)]
    # (__sk_nulls_add_node_rcu), so the walk meets the newest listen() first. Listeners on the
    # bucket's other ports score -1 and leave the walk unchanged, so all of them may be given.
    for sk in reversed(listeners):
        score = compute_score_39(sk, syn)
        if score > hiscore:
            result, hiscore = sk, score
            reuseport = sk.reuseport
            if reuseport:
                phash = first_phash = _phash(syn, secret, ipv6_secret)
                matches = 1
        elif score == hiscore and reuseport:
            # the tie joins whatever its own sk_reuseport: only the best's flag is read
            matches += 1
            if reservoir_replaces(phash, matches):
                result = sk
            phash = next_pseudo_random32(phash)
    if result is None:
        return Lookup39(None, 0, 0, None, f"{fn}: no listener on port {syn.dport} for {syn.daddr}")
    if not reuseport:
        return Lookup39(result, hiscore, 1, None, f"{fn}: {result.name} has the best score {hiscore}")
    assert first_phash is not None
    why = (f"{fn}: {matches} at score {hiscore} after a reuseport best; inet_ehashfn = "
           f"{first_phash:#010x}, next_pseudo_random32 reservoir -> {result.name}")
    return Lookup39(result, hiscore, matches, first_phash, why)


def lookup_listener_39(listeners: list[Sock39], syn: Syn39, secret: int,
                       ipv6_secret: int | None = None) -> Sock39 | None:
    """The listener 3.9 gives the SYN, or None."""
    return lookup_39(listeners, syn, secret, ipv6_secret).sk


# ---- bind ---------------------------------------------------------------------------------


@dataclass
class BindBucket39:
    """struct inet_bind_bucket of 3.9: owners of one port and the fast-path flags."""

    port: int
    fastreuse: int = 0
    fastreuseport: int = 0
    fastuid: int = 0
    owners: list[Sock39] = field(default_factory=list)


def inet_csk_bind_conflict_39(sk: Sock39, tb: BindBucket39, relax: bool) -> Sock39 | None:
    """inet_csk_bind_conflict (IPv4): the first owner sk conflicts with, or None. A socket is
    known by its name, so a copy of sk in another state is still sk."""
    # net/ipv4/inet_connection_sock.c:inet_csk_bind_conflict (3.9.6); an AF_INET6 sk goes to
    # inet6_csk_bind_conflict (net/ipv6/inet6_connection_sock.c), not modelled here
    if sk.family != Family.INET:
        raise ValueError(f"{sk.name}: inet6_csk_bind_conflict is not modelled")
    for sk2 in tb.owners:
        if sk2.name == sk.name or sk2.ipv6_only_sock():  # inet_v6_ipv6only (tw_ipv6only for TIME_WAIT)
            continue
        if sk.bound_dev_if and sk2.bound_dev_if and sk.bound_dev_if != sk2.bound_dev_if:
            continue
        addr_overlap = (sk2.rcv_saddr() == INADDR_ANY or sk.rcv_saddr() == INADDR_ANY
                        or sk2.rcv_saddr() == sk.rcv_saddr())
        no_reuse = not sk.reuse or not sk2.reuse or sk2.state == State39.LISTEN
        no_reuseport = (not sk.reuseport or not sk2.reuseport
                        or (sk2.state != State39.TIME_WAIT and sk.uid != sk2.uid))
        if no_reuse and no_reuseport and addr_overlap:
            return sk2
        if not relax and sk.reuse and sk2.reuse and sk2.state != State39.LISTEN and addr_overlap:
            return sk2
    return None


def inet_csk_get_port_39(sk: Sock39, tb: BindBucket39) -> bool:
    """inet_csk_get_port for an explicit port (snum != 0, no SK_FORCE_REUSE): True when sk may
    take tb's port; updates tb's fast-path flags and owners as the kernel does."""
    # net/ipv4/inet_connection_sock.c:inet_csk_get_port (3.9.6), tb_found / tb_not_found; listen()
    # calls it again with sk_state = TCP_LISTEN (inet_csk_listen_start)
    reuse_ok = sk.reuse and sk.state != State39.LISTEN
    if tb.owners:
        fast = (tb.fastreuse > 0 and reuse_ok) or (
            tb.fastreuseport > 0 and sk.reuseport and tb.fastuid == sk.uid)
        if not fast and inet_csk_bind_conflict_39(sk, tb, relax=True) is not None:
            return False  # goto fail_unlock (the "again" retry is for snum == 0 only)
        if not fast:
            # tb_not_found on a non-empty bucket: a newcomer can only clear the fast paths
            if tb.fastreuse and not reuse_ok:
                tb.fastreuse = 0
            if tb.fastreuseport and (not sk.reuseport or tb.fastuid != sk.uid):
                tb.fastreuseport = 0
    else:
        tb.fastreuse = 1 if reuse_ok else 0
        tb.fastreuseport, tb.fastuid = (1, sk.uid) if sk.reuseport else (0, tb.fastuid)
    # success: inet_bind_hash unless sk is bound here already (then its entry takes sk's state)
    names = [o.name for o in tb.owners]
    if sk.name in names:
        tb.owners[names.index(sk.name)] = sk
    else:
        tb.owners.append(sk)
    return True
