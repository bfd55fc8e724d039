"""The SYN-to-listener hash of an IPv4 SO_REUSEPORT group: inet_ehashfn and reciprocal_scale.

Pure u32 arithmetic copied from include/linux/jhash.h, include/net/inet_sock.h and
net/ipv4/inet_hashtables.c; the one unknown is the per-namespace ``secret``
(inet_ehash_secret + net_hash_mix(net)). harness/calibrate.py transcribes this for numba.
"""

from __future__ import annotations

import functools
import ipaddress

U32 = 0xFFFFFFFF
# include/linux/jhash.h: JHASH_INITVAL
JHASH_INITVAL = 0xDEADBEEF


def rol32(x: int, s: int) -> int:
    """rol32: rotate a u32 left by s bits."""
    # include/linux/bitops.h:rol32
    x &= U32
    return ((x << (s & 31)) | (x >> ((-s) & 31))) & U32


def jhash_final(a: int, b: int, c: int) -> int:
    """__jhash_final: the final mix of a, b, c (u32 each); returns c."""
    # include/linux/jhash.h:__jhash_final (same constants in 6.12 and 7.2); rol32 written out
    # (b << s | b >> (32 - s), masked): a call per rotation was a fifth of the hash's time
    c = ((c ^ b) - (((b << 14) | (b >> 18)) & U32)) & U32
    a = ((a ^ c) - (((c << 11) | (c >> 21)) & U32)) & U32
    b = ((b ^ a) - (((a << 25) | (a >> 7)) & U32)) & U32
    c = ((c ^ b) - (((b << 16) | (b >> 16)) & U32)) & U32
    a = ((a ^ c) - (((c << 4) | (c >> 28)) & U32)) & U32
    b = ((b ^ a) - (((a << 14) | (a >> 18)) & U32)) & U32
    c = ((c ^ b) - (((b << 24) | (b >> 8)) & U32)) & U32
    return c


def jhash_3words(a: int, b: int, c: int, initval: int) -> int:
    """jhash_3words: hash three u32 words with a seed."""
    # include/linux/jhash.h:jhash_3words -> __jhash_nwords
    initval = (initval + JHASH_INITVAL + (3 << 2)) & U32
    return jhash_final((a + initval) & U32, (b + initval) & U32, (c + initval) & U32)


@functools.lru_cache(maxsize=1 << 16)
def ipv4_word(addr: str) -> int:
    """A __be32 address as x86 reads it: network-order bytes taken as a little-endian u32."""
    return int.from_bytes(ipaddress.IPv4Address(addr).packed, "little")


def port_word(port: int) -> int:
    """A __be16 port as x86 reads it: network-order bytes taken as a little-endian u16."""
    return ((port & 0xFF) << 8) | (port >> 8)  # the two bytes swapped


def inet_ehashfn(secret: int, laddr: str, lport: int, faddr: str, fport: int, lport_outside: bool) -> int:
    """inet_ehashfn: the established/reuseport hash; lport_outside selects the 6.15+ form."""
    return inet_ehashfn_words(secret, ipv4_word(laddr), lport, ipv4_word(faddr), fport, lport_outside)


def ipv4_word_of(addr: int) -> int:
    """ipv4_word for an address held as an integer (host order, as ipaddress keeps it): the
    bytes swapped, as a little-endian load of the network-order address reads them."""
    return ((addr & 0xFF) << 24) | ((addr & 0xFF00) << 8) | ((addr >> 8) & 0xFF00) | (addr >> 24)


def inet_ehashfn_words(secret: int, la: int, lport: int, fa: int, fport: int, lport_outside: bool) -> int:
    """inet_ehashfn on address words already in the kernel's byte order."""
    fp = port_word(fport)
    if lport_outside:
        # net/ipv4/inet_hashtables.c:inet_ehashfn (6.15+): lport + __inet_ehashfn(laddr, 0, ...)
        return (lport + jhash_3words(la, fa, fp, secret)) & U32
    # include/net/inet_sock.h:__inet_ehashfn (before 6.15): lport << 16 | fport as the third word
    return jhash_3words(la, fa, ((lport << 16) | fp) & U32, secret)


def reciprocal_scale(val: int, ep_ro: int) -> int:
    """reciprocal_scale: map a u32 hash onto [0, ep_ro) by the high half of a 64-bit product."""
    # include/linux/math.h:reciprocal_scale
    return ((val & U32) * (ep_ro & U32)) >> 32


def reuseport_index(
    secret: int, saddr: str, sport: int, daddr: str, dport: int, num_socks: int, lport_outside: bool
) -> int:
    """The socks[] slot a SYN from saddr:sport to daddr:dport picks in a group of num_socks."""
    # net/ipv4/inet_hashtables.c:inet_lookup_reuseport -> net/core/sock_reuseport.c:reuseport_select_sock_by_hash
    phash = inet_ehashfn(secret, daddr, dport, saddr, sport, lport_outside)
    return reciprocal_scale(phash, num_socks)
