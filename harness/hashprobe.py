"""The kernel's reuseport hash of chosen SYN tuples, read back by an eBPF program.

inet6_ehashfn mixes a second secret (ipv6_hash_secret, of the faddr) into the hash, so IPv6
picks cannot be computed from one calibrated word as IPv4's are. The kernel hands the hash it
uses to a BPF_PROG_TYPE_SK_REUSEPORT program (filter.c:bpf_run_sk_reuseport:
sk_reuseport_md.hash = the phash of reuseport_select_sock), so after a scenario, in its
namespace, on its ports, a one-socket group whose program stores md->hash (keyed by the TCP
source port) and returns SK_DROP (the SYN gets a RST: no state is left) hears each of the
scenario's tuples again: that is the hash its own groups used. Measured twice per tuple: on
a wildcard listener (the wildcard chain hashes with in6addr_any: inet6_hashtables.c:
inet6_lookup_listener) and on one bound to the destination (the exact-address chain, and
sk_hash of a request or child, inet6_ehashfn of its own addresses, which tcp_migrate_req
migrations pick by: sock_reuseport.c:reuseport_migrate_sock). IPv4 flows are read the same way
(tests/kernel/test_hash_read.py checks them against the calibrated inet_ehashfn). Kernel side:
I/O only.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Sequence

from harness import bpf
from harness.inject import Flow, TunInjector
from harness.inject_udp import datagram_key, port_unreachable_key, udp_bytes
from model.jhash import port_word

_MARK = 1 << 32  # set beside the hash by the program: a slot the program wrote this round
_SLOTS = 1 << 16  # one per TCP source port (as loaded: network order read little-endian)
REPLY_WAIT = 2.0  # seconds for the RSTs still missing after the batch is written
WILDCARD = {socket.AF_INET6: ipaddress.IPv6Address("::"), socket.AF_INET: ipaddress.IPv4Address("0.0.0.0")}

# (laddr the hash took, lport, faddr, fport) -> the u32 hash (model.lookup.Hashes6)
HashKey = tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int,
                ipaddress.IPv4Address | ipaddress.IPv6Address, int]


def recorder(map_fd: int) -> list[bpf.Insn]:
    """map[th->source] = md->hash | 1 << 32; return SK_DROP."""
    b = bpf
    head = [
        b.mov_reg(6, 1),  # r6 = ctx
        b.ldx(b.DW, 2, 6, b.MD_DATA),  # r2 = md->data (the TCP header)
        b.ldx(b.DW, 3, 6, b.MD_DATA_END),
        b.mov_reg(4, 2),
        b.add_imm(4, 2),
    ]
    body = [
        b.ldx(b.H, 7, 2, 0),  # r7 = th->source
        b.stx(b.W, 10, 7, -4),  # key
        b.ldx(b.W, 8, 6, b.MD_HASH),  # r8 = md->hash
        b.mov_imm(9, 1),
        b.lsh_imm(9, 32),
        b.or_reg(8, 9),
        b.stx(b.DW, 10, 8, -16),  # value
        *b.ld_map_fd(1, map_fd),
        b.mov_reg(2, 10),
        b.add_imm(2, -4),
        b.mov_reg(3, 10),
        b.add_imm(3, -16),
        b.mov_imm(4, 0),  # BPF_ANY
        b.call(b.FUNC_MAP_UPDATE_ELEM),
    ]
    tail = [b.mov_imm(0, b.SK_DROP), b.exit_()]
    return [*head, b.jgt_reg(4, 3, len(body)), *body, *tail]  # past data_end: no header


def _sport_key(port: int) -> bytes:
    """th->source as the program loads it: the network-order bytes read little-endian."""
    return struct.pack("<I", port_word(port))


class HashRecorder:
    """The program and its map, made once per namespace worker; `problem` says why not."""

    def __init__(self) -> None:
        self.problem = ""
        self.map_fd = self.prog_fd = -1
        try:
            self.map_fd = bpf.map_create(bpf.MAP_TYPE_ARRAY, 4, 8, _SLOTS)
            self.prog_fd = bpf.prog_load(bpf.PROG_TYPE_SK_REUSEPORT, recorder(self.map_fd))
        except OSError as e:  # no bpf(), or no SK_REUSEPORT programs on this kernel
            self.problem = f"the hash recorder could not be loaded: {e}"

    def measure(self, injector: TunInjector, flows: Sequence[Flow], udp: bool = False) -> dict[HashKey, int]:
        """The hash each flow meets on a wildcard and on an exact-address listener of its
        family and port (flows whose port cannot be bound again are left out); with `udp`,
        the hash each datagram meets in a UDP group (udp6_ehashfn: md->data is the UDP
        header, whose source port is where TCP's is)."""
        out: dict[HashKey, int] = {}
        if self.problem:
            return out
        by_port: dict[tuple[int, int], list[Flow]] = {}
        for f in dict.fromkeys(flows):
            family = socket.AF_INET6 if ":" in f.dst else socket.AF_INET
            by_port.setdefault((family, f.dport), []).append(f)
        for (family, port), group in by_port.items():
            self._phase(injector, family, port, [WILDCARD[family]], group, out, False, udp)
            dsts = sorted({ipaddress.ip_address(f.dst) for f in group})
            self._phase(injector, family, port, dsts, group, out, True, udp)
        injector.drain()
        return out

    def _phase(self, injector: TunInjector, family: int, port: int, addrs: list,
               flows: list[Flow], out: dict[HashKey, int], exact: bool, udp: bool) -> None:
        socks = []
        try:
            for addr in addrs:
                s = socket.socket(family, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
                socks.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                try:
                    s.bind((str(addr), port))
                except OSError:
                    continue  # taken still (a TIME_WAIT 5.10 cannot destroy): not measured
                if not udp:
                    s.listen(1)
                s.setsockopt(socket.SOL_SOCKET, bpf.SO_ATTACH_REUSEPORT_EBPF, self.prog_fd)
            for batch in _batches(flows):
                keys = [_sport_key(f.sport) for f in batch]
                for k in keys:
                    bpf.map_update(self.map_fd, k, bytes(8))
                # The program runs in the lookup, before the RST is sent: with every RST read, every
                # hash is in the map. The kernel answers inside write() unless softirqs are
                # deferred (ksoftirqd, as under a loaded emulated guest): then the wait is needed
                if udp:  # SK_DROP: no socket, so a port unreachable answers each
                    injector.exchange([(f, datagram_key(f), udp_bytes(f)) for f in batch],
                                      port_unreachable_key, wait=REPLY_WAIT)
                else:
                    injector.syn_only(batch, wait=REPLY_WAIT)
                for f, k in zip(batch, keys, strict=True):
                    raw = bpf.map_lookup(self.map_fd, k, 8)
                    value = int.from_bytes(raw, "little") if raw else 0
                    if value & _MARK:
                        laddr = ipaddress.ip_address(f.dst) if exact else WILDCARD[family]
                        out[(laddr, port, ipaddress.ip_address(f.src), f.sport)] = value & 0xFFFFFFFF
        finally:
            for s in socks:
                s.close()


def _batches(flows: list[Flow]) -> list[list[Flow]]:
    """The flows in batches of distinct source ports (the map's key): a port's n-th flow
    goes in the n-th batch."""
    batches: list[list[Flow]] = []
    seen: dict[int, int] = {}
    for f in flows:
        n = seen.get(f.sport, 0)
        seen[f.sport] = n + 1
        if n == len(batches):
            batches.append([])
        batches[n].append(f)
    return batches
