"""TCP handshakes injected through TUN devices from precomputed packet bytes (docs/design.md,
"The kernel side" and "Kernel facts").

A packet is a cached per-(src, dst, payload length) template (IP headers final, TCP checksum
summed over the constant words) with ports, sequence numbers and the checksum patched in. The
kernel handles a SYN on the writer's CPU before write() returns, so its reply is read at once;
anything read that is not the awaited reply of a flow in the batch (FINs/RSTs of closing
children, SYN-ACK retransmits, IPv6 MLD/RS) is a stray: counted and discarded.

A flow still unanswered after its batch is written is settled by a barrier, not by a timeout: an
ICMP echo request written to each TUN after the batch. The writer's packets are handled in
order, before write() returns (tun.c:tun_get_user -> tun_rx_batched -> netif_receive_skb; RPS
off: see rps_by_default), and each reply
is queued on the TUN as it is sent, so once the echo reply is read every reply to an earlier
SYN has been read too: the flows still unanswered were dropped. `wait` bounds it (a kernel that
does not answer the echo leaves the flows DROP after `wait` seconds, as before the barrier).

A TUN queues at most txqueuelen (500) packets for its reader and drops the rest, counted as the
device's tx_dropped. Unanswered flows in a batch during which that counter rose cannot be told
from real drops: the batch raises RepliesLost rather than report them as DROP.
"""

from __future__ import annotations

import ipaddress
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

from netns.topology import STANDARD, Topology

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
MSS = 1460
TTL = 64
WINDOW = 65535
IPV4_DF = 0x4000
PROTO_TCP = 6
PROTO_ICMP = 1
ICMP_ECHOREPLY, ICMP_ECHO = 0, 8

SYNACK_ACKED, SYNACK, RST_KIND, DROP = "SYNACK_ACKED", "SYNACK", "RST", "DROP"
ANSWERED = "ANSWERED"  # an exchange's packet got the reply its caller looks for

_READ_SIZE = 65535
_MSS_OPTION = struct.pack("!BBH", 2, 4, MSS)
_SYN_WORD = (20 + len(_MSS_OPTION)) // 4 << 12 | SYN  # data offset and flags
_ACK_WORD = 5 << 12 | ACK
_RST_WORD = 5 << 12 | RST
_TCP = struct.Struct("!HHIIHHHH")  # sport dport seq ack offset+flags window checksum urgent
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_PORTS = struct.Struct("!HH")
_SEQ_ACK_FLAGS = struct.Struct("!IIxB")
_U32 = struct.Struct("!I")
_ICMP = struct.Struct("!BBHHH")  # type code checksum id sequence
_BARRIER_ID = 0x5348  # the echo id of _wait's barriers
_M32 = 0xFFFF_FFFF


class Flow(NamedTuple):
    """A virtual client's connection attempt; `payload` bytes of data ride on the SYN (a
    tuple: one per injected SYN is made, pickled to the worker and hashed)."""

    src: str
    sport: int
    dst: str
    dport: int
    payload: int = 0


class Reply(NamedTuple):
    """The TCP fields of a packet the kernel sent (addresses as text)."""

    src: str
    sport: int
    dst: str
    dport: int
    flags: int
    seq: int
    ack: int


class Result(NamedTuple):
    """What one flow got (SYNACK_ACKED, SYNACK, RST, DROP; ANSWERED in an exchange), our ISN
    and the server's."""

    flow: Flow
    kind: str
    isn: int
    server_isn: int | None = None


class RepliesLost(RuntimeError):
    """A TUN dropped packets (queue full) while flows of the batch were unanswered."""

    def __init__(self, results: list[Result], dropped: int) -> None:
        super().__init__(
            f"{dropped} packet(s) dropped by a full TUN queue during the batch: "
            f"{sum(r.kind == DROP for r in results)} DROP result(s) are unreliable (drain strays sooner)"
        )
        self.results = results


class _Template(NamedTuple):
    """The constant parts of the packets between one (src, dst) for one SYN payload length."""

    syn_ip: bytes  # IP header of the SYN (MSS option and payload)
    bare_ip: bytes  # IP header of a 20-byte segment (ACK, RST)
    syn_base: int  # word sum of the SYN's constant parts: pseudo-header, window, MSS option
    bare_base: int  # word sum of a bare segment's: pseudo-header, window
    reply_addrs: bytes  # server then client address, as a reply carries them


_FILLER = bytes(range(256))


def payload_bytes(flow: Flow) -> bytes:
    """The SYN's data: the sport as a big-endian u32 (cBPF `ld [0]`), then 00 01 02 ... as filler.

    The same bytes as model.cbpf.payload_bytes, so a program reading further sees what the model sees.
    """
    n = flow.payload
    return (_U32.pack(flow.sport) + _FILLER * (n // 256 + 1))[:n]


def _family(addr: str) -> int:
    """AF_INET6 for an address with a colon, else AF_INET."""
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def _word_sum(data: bytes) -> int:
    """One's-complement sum of 16-bit words, modulo 0xffff (2**16 = 1 mod 0xffff; odd -> padded)."""
    return (int.from_bytes(data, "big") << (8 * (len(data) & 1))) % 0xFFFF


def _fold(total: int) -> int:
    """The checksum field for a word total: ~sum, where a nonzero sum = 0 mod 0xffff is 0xffff."""
    rest = total % 0xFFFF
    return 0xFFFF - rest if rest else 0


def _ip_header(src: bytes, dst: bytes, tcp_len: int, proto: int = PROTO_TCP) -> bytes:
    """The complete IPv4 (DF, id 0) or IPv6 header for a TCP segment of `tcp_len` bytes (or
    another protocol's payload)."""
    if len(src) == 4:
        header = _IPV4.pack(0x45, 0, 20 + tcp_len, 0, IPV4_DF, TTL, proto, 0, src, dst)
        return header[:10] + struct.pack("!H", _fold(_word_sum(header))) + header[12:]
    return _IPV6.pack(0x60000000, tcp_len, proto, TTL, src, dst)


def echo_bytes(src: str, dst: str, seq: int) -> bytes:
    """An IPv4 ICMP echo request, id _BARRIER_ID: the barrier TunInjector._wait writes."""
    s, d = socket.inet_pton(socket.AF_INET, src), socket.inet_pton(socket.AF_INET, dst)
    csum = _fold(_word_sum(_ICMP.pack(ICMP_ECHO, 0, 0, _BARRIER_ID, seq)))
    return _ip_header(s, d, _ICMP.size, PROTO_ICMP) + _ICMP.pack(ICMP_ECHO, 0, csum, _BARRIER_ID, seq)


def echo_reply_seq(packet: bytes) -> int | None:
    """The sequence number of an IPv4 echo reply to one of our barriers, else None."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != PROTO_ICMP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if len(packet) < ihl + _ICMP.size:
        return None
    kind, _, _, ident, seq = _ICMP.unpack_from(packet, ihl)
    return seq if kind == ICMP_ECHOREPLY and ident == _BARRIER_ID else None


@lru_cache(maxsize=1 << 16)
def _template(src: str, dst: str, payload_len: int) -> _Template:
    """Build (once) the template for packets from `src` to `dst`.

    The pseudo-header's words sum to addresses + protocol + TCP length for both families
    (RFC 793; RFC 8200 §8.1 widens the length to 32 bits and moves the protocol byte).
    """
    family = _family(src)
    s, d = socket.inet_pton(family, src), socket.inet_pton(family, dst)
    pseudo = _word_sum(s + d) + PROTO_TCP + WINDOW
    syn_len = 20 + len(_MSS_OPTION) + payload_len
    return _Template(
        _ip_header(s, d, syn_len), _ip_header(s, d, 20),
        pseudo + syn_len + _word_sum(_MSS_OPTION), pseudo + 20, d + s,
    )


def _segment(ip: bytes, base: int, word: int, options: bytes, flow: Flow, seq: int, ack: int,
             payload: bytes = b"") -> bytes:
    """Patch ports, seq, ack, offset+flags `word` and the TCP checksum onto an IP header."""
    total = base + word + flow.sport + flow.dport + seq + ack + (_word_sum(payload) if payload else 0)
    return ip + _TCP.pack(flow.sport, flow.dport, seq, ack, word, WINDOW, _fold(total), 0) + options + payload


def _syn_on(t: _Template, flow: Flow, seq: int) -> bytes:
    """The SYN of `flow` on its template `t` (syn_bytes, and the injector's _open)."""
    return _segment(t.syn_ip, t.syn_base, _SYN_WORD, _MSS_OPTION, flow, seq, 0,
                    payload_bytes(flow) if flow.payload else b"")


def syn_bytes(flow: Flow, seq: int) -> bytes:
    """The SYN (MSS option, payload_bytes(flow) as data) opening `flow` with ISN `seq`."""
    return _syn_on(_template(flow.src, flow.dst, flow.payload), flow, seq)


def ack_bytes(flow: Flow, seq: int, ack: int) -> bytes:
    """A bare ACK; completes the handshake with seq = isn + 1, ack = server_isn + 1."""
    t = _template(flow.src, flow.dst, flow.payload)
    return _segment(t.bare_ip, t.bare_base, _ACK_WORD, b"", flow, seq, ack)


def _acked(isn: int, flow: Flow, flags: int) -> int:
    """What the kernel's answer to the SYN opening `flow` with ISN `isn` acknowledges. A RST
    acks the SYN and its data, seq + syn + fin + len (tcp_ipv4.c:tcp_v4_send_reset,
    tcp_ipv6.c:tcp_v6_send_reset, for a segment without ACK); a SYN-ACK, cookie or not, only
    the SYN: the request's rcv_nxt is seq + 1 (tcp_input.c:tcp_openreq_init), the data on a
    SYN without Fast Open is not taken."""
    return (isn + 1 + (flow.payload if flags & RST else 0)) & _M32


def rst_bytes(flow: Flow, seq: int) -> bytes:
    """A RST; with seq = isn + 1 it aborts the flow's request or established child."""
    t = _template(flow.src, flow.dst, flow.payload)
    return _segment(t.bare_ip, t.bare_base, _RST_WORD, b"", flow, seq, 0)


def _reply_key(flow: Flow) -> bytes:
    """The bytes a reply to `flow` carries where _peek reads its key."""
    return _template(flow.src, flow.dst, flow.payload).reply_addrs + _PORTS.pack(flow.dport, flow.sport)


def _peek(packet: bytes) -> tuple[bytes, int, int, int] | None:
    """(src+dst addresses and ports as bytes, flags, seq, ack) of an IPv4/IPv6 TCP packet, else None."""
    if len(packet) < 40:
        return None
    version = packet[0] >> 4
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        if packet[9] != PROTO_TCP or len(packet) < ihl + 20:
            return None
        key = packet[12:24] if ihl == 20 else packet[12:20] + packet[ihl:ihl + 4]
        tcp = ihl
    elif version == 6:
        if packet[6] != PROTO_TCP or len(packet) < 60:
            return None
        key, tcp = packet[8:44], 40
    else:
        return None
    seq, ack, flags = _SEQ_ACK_FLAGS.unpack_from(packet, tcp + 4)
    return key, flags, seq, ack


def parse(packet: bytes) -> Reply | None:
    """The TCP fields of an IPv4 or IPv6 TCP packet; None for anything else."""
    peeked = _peek(packet)
    if peeked is None:
        return None
    key, flags, seq, ack = peeked
    alen = (len(key) - 4) // 2
    family = socket.AF_INET if alen == 4 else socket.AF_INET6
    sport, dport = _PORTS.unpack_from(key, 2 * alen)
    src, dst = socket.inet_ntop(family, key[:alen]), socket.inet_ntop(family, key[alen:2 * alen])
    return Reply(src, sport, dst, dport, flags, seq, ack)


# The standard topology's client ranges (docs/design.md, Topology); all byte-aligned, matched as byte prefixes.
_CLIENT_RANGES = tuple(
    (net.network_address.packed[: net.prefixlen // 8], net.max_prefixlen // 8, name)
    for net, name in (
        (ipaddress.ip_network("198.18.0.0/16"), "tun0"),
        (ipaddress.ip_network("2001:db8::/48"), "tun0"),
        (ipaddress.ip_network("198.19.0.0/16"), "tun1"),
        (ipaddress.ip_network("2001:db8:1::/48"), "tun1"),
    )
)


def default_route(addr: str) -> str:
    """The standard topology's TUN for a virtual client address."""
    packed = socket.inet_pton(_family(addr), addr)
    for prefix, alen, name in _CLIENT_RANGES:
        if len(packed) == alen and packed.startswith(prefix):
            return name
    raise ValueError(f"{addr} is in no virtual client range of the standard topology")


def _barrier_ends(topology: Topology) -> dict[str, tuple[str, str]]:
    """Each TUN's barrier ends (docs/design.md, Topology): a client address it routes (the last
    host of its IPv4 range) and the device's own first IPv4 address, which answers the echo."""
    ends = {}
    for dev in topology.devices:
        nets = [ipaddress.ip_network(r) for r in dev.routes if ipaddress.ip_network(r).version == 4]
        own = [ipaddress.ip_interface(a).ip for a in dev.addresses if ipaddress.ip_interface(a).version == 4]
        if dev.tun and nets and own:
            ends[dev.name] = (str(nets[0].broadcast_address - 1), str(own[0]))
    return ends


BARRIER_ENDS = _barrier_ends(STANDARD)
# The namespace's default RPS mask for new devices (6.5+, per netns): with RPS a packet may be
# handled on another CPU, after the write returns and out of order with the echo
RPS_DEFAULT_MASK = Path("/proc/sys/net/core/rps_default_mask")


def rps_by_default() -> bool:
    """Do new devices in this namespace steer received packets to other CPUs (RPS)?"""
    try:
        mask = RPS_DEFAULT_MASK.read_text().strip().replace(",", "")
    except OSError:
        return False  # before 6.5 no default: a new device has RPS off
    try:
        return bool(mask) and int(mask, 16) != 0
    except ValueError:
        return True  # unreadable: assume RPS, and settle by the wait alone


def pin_to_cpu(cpu: int) -> None:
    """Run this process on `cpu` only: the kernel handles an injected SYN on the writer's CPU."""
    os.sched_setaffinity(0, {cpu})


class _Batch:
    """The flows of one handshake/syn_only call (or exchange: `answers` reads the key of the
    reply a packet of another protocol is); those awaiting a reply keyed by reply tuple."""

    def __init__(self, flows: Sequence[Flow], complete: bool,
                 answers: Callable[[bytes], Hashable | None] | None = None) -> None:
        self.flows = flows
        self.complete = complete
        self.answers = answers
        self.results: dict[int, Result] = {}
        self.pending: dict[Hashable, tuple[int, int, int]] = {}  # key -> (index, isn, fd)


class TunInjector:
    """Writes SYNs (and the completing ACKs) into TUN fds; reads and matches the kernel's replies.

    Create it inside the namespace: it watches the TUNs' drop counters there. `strays` counts
    packets read during handshake/syn_only that answered no flow of the batch.
    """

    def __init__(self, fds: dict[str, int], route: Callable[[str], str] = default_route) -> None:
        self.fds = dict(fds)
        self.route = route
        self.strays = 0
        self._isn = 0x1000_0000
        self._fd_of: dict[str, int] = {}
        # barrier ends by fd, for the TUNs that have them (none under RPS: only the wait then
        # settles a flow); the barriers awaiting their reply
        rps = rps_by_default()
        self._barrier_ends = {fd: BARRIER_ENDS[name] for name, fd in self.fds.items()
                              if name in BARRIER_ENDS and not rps}
        self._barriers: set[int] = set()
        self._barrier_seq = 0
        self._netdev = open("/proc/thread-self/net/dev", "rb", buffering=0)

    def close(self) -> None:
        """Close the counters file (the TUN fds belong to the caller)."""
        self._netdev.close()

    def _open(self, flow: Flow, isn: int) -> tuple[Hashable, bytes]:
        """The key _peek will give the reply, and the SYN's bytes (syn_bytes, on the template
        looked up once)."""
        t = _template(flow.src, flow.dst, flow.payload)
        return t.reply_addrs + _PORTS.pack(flow.dport, flow.sport), _syn_on(t, flow, isn)

    def _ack(self, flow: Flow, seq: int, ack: int) -> bytes:
        """The completing ACK's bytes."""
        return ack_bytes(flow, seq, ack)

    def datagram_bytes(self, flow: Flow) -> bytes:
        """A UDP datagram of `flow` (harness.inject_udp.udp_bytes; the scapy baseline builds its own)."""
        from harness.inject_udp import udp_bytes  # inject_udp builds on this module

        return udp_bytes(flow)

    def _peek(self, packet: bytes) -> tuple[Hashable, int, int, int] | None:
        """(key, flags, seq, ack) of a TCP packet, else None."""
        return _peek(packet)

    def _fd(self, src: str) -> int:
        """The fd of the TUN routing `src`, cached per address."""
        fd = self._fd_of.get(src)
        if fd is None:
            fd = self._fd_of[src] = self.fds[self.route(src)]
        return fd

    def _next_isn(self) -> int:
        """A fresh ISN (a deterministic odd-stepped counter)."""
        self._isn = (self._isn + 0x0100_0193) & _M32
        return self._isn

    def _tx_dropped(self) -> int:
        """Packets our TUNs dropped on the way to this reader (queue full), from /proc/net/dev."""
        total = 0
        for line in os.pread(self._netdev.fileno(), 1 << 16, 0).split(b"\n")[2:]:
            name, _, counters = line.partition(b":")
            if name.strip().decode() in self.fds:
                total += int(counters.split()[11])
        return total

    def handshake(self, flows: Sequence[Flow], wait: float = 0.2) -> list[Result]:
        """Complete a handshake per flow: SYNACK_ACKED, RST, or DROP (once the barrier after the
        batch is answered, or after at most `wait` s more)."""
        return self._run(flows, wait, complete=True)

    def syn_only(self, flows: Sequence[Flow], wait: float = 0.2) -> list[Result]:
        """Send each SYN and report SYNACK, RST or DROP; nothing is ACKed."""
        return self._run(flows, wait, complete=False)

    def ack(self, result: Result) -> str:
        """Write the ACK completing a syn_only flow; RST_KIND if the kernel answers it with a
        RST at once (it handles the ACK before write() returns), else SYNACK_ACKED."""
        assert result.server_isn is not None
        flow, fd = result.flow, self._fd(result.flow.src)
        os.write(fd, self._ack(flow, (result.isn + 1) & _M32, (result.server_isn + 1) & _M32))
        want = _reply_key(flow)
        answer = SYNACK_ACKED
        while True:
            try:
                packet = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return answer
            peeked = self._peek(packet)
            if peeked is not None and peeked[0] == want and peeked[1] & RST:
                answer = RST_KIND
            else:
                self.strays += 1

    def reset(self, results: Sequence[Result]) -> None:
        """Abort, with a RST, every flow that got a SYN-ACK (request or established child)."""
        for r in results:
            if r.server_isn is not None:
                os.write(self._fd(r.flow.src), rst_bytes(r.flow, (r.isn + 1) & _M32))

    def exchange(self, sends: Sequence[tuple[Flow, Hashable, bytes]],
                 answers: Callable[[bytes], Hashable | None], wait: float = 0.2) -> list[Result]:
        """Write each (flow, key, packet) to its client's TUN; a packet read whose `answers`
        key is a flow's settles it ANSWERED, the rest are DROP once the barrier is answered
        (or after `wait`): the same settling as a SYN batch's, for another protocol."""
        batch = _Batch([f for f, _, _ in sends], False, answers)
        for i, (flow, key, packet) in enumerate(sends):
            if key in batch.pending:
                raise ValueError(f"{flow} appears twice in one batch")
            fd = self._fd(flow.src)
            batch.pending[key] = (i, 0, fd)
            os.write(fd, packet)
        for fd in self.fds.values():  # an answer leaves by its client's route, any TUN
            self._read(fd, batch)
        self._wait(batch, wait)
        for i, _, _ in batch.pending.values():
            batch.results[i] = Result(batch.flows[i], DROP, 0)
        return [batch.results[i] for i in range(len(sends))]

    def _run(self, flows: Sequence[Flow], wait: float, complete: bool) -> list[Result]:
        """Write every SYN, reading replies as they come; then wait once for the missing ones."""
        batch = _Batch(flows, complete)
        dropped_before = self._tx_dropped()
        pending, fd_of, write = batch.pending, self._fd_of, os.write  # once per batch, not per SYN
        for i, flow in enumerate(flows):
            isn = self._next_isn()
            fd = fd_of.get(flow.src)
            if fd is None:
                fd = self._fd(flow.src)
            key, syn = self._open(flow, isn)
            if key in pending:
                raise ValueError(f"{flow} appears twice in one batch")
            pending[key] = (i, isn, fd)
            write(fd, syn)
            self._read(fd, batch, key)
        self._wait(batch, wait)
        for i, isn, _ in batch.pending.values():
            batch.results[i] = Result(flows[i], DROP, isn)
        results = [batch.results[i] for i in range(len(flows))]
        if batch.pending and (dropped := self._tx_dropped() - dropped_before):
            raise RepliesLost(results, dropped)
        return results

    def _read(self, fd: int, batch: _Batch, until: Hashable | None = None) -> None:
        """Read `fd` until the flow keyed `until` is answered, or nothing is queued."""
        while True:
            try:
                packet = os.read(fd, _READ_SIZE)
            except BlockingIOError:
                return
            self._take(packet, batch)
            if until is not None and until not in batch.pending:
                return

    def _take(self, packet: bytes, batch: _Batch) -> None:
        """Settle the flow this packet answers (writing its ACK), or count it as a stray."""
        peeked = self._peek(packet)
        if peeked is None or (entry := batch.pending.get(peeked[0])) is None:
            if peeked is None and (seq := echo_reply_seq(packet)) is not None:
                self._barriers.discard(seq)  # ours (a late one from an earlier batch: not a stray)
                return
            if peeked is None and batch.answers is not None:
                answered = batch.pending.pop(batch.answers(packet), None)  # type: ignore[arg-type]
                if answered is not None:
                    batch.results[answered[0]] = Result(batch.flows[answered[0]], ANSWERED, 0)
                    return
            self.strays += 1
            return
        key, flags, seq, ack = peeked
        i, isn, fd = entry
        flow = batch.flows[i]
        if ack != _acked(isn, flow, flags) or not (flags & RST or flags & (SYN | ACK) == SYN | ACK):
            self.strays += 1  # not the answer to this SYN (e.g. a challenge ACK on a reused tuple)
            return
        del batch.pending[key]
        if flags & RST:
            batch.results[i] = Result(flow, RST_KIND, isn)
        elif batch.complete:
            os.write(fd, self._ack(flow, (isn + 1) & _M32, (seq + 1) & _M32))
            batch.results[i] = Result(flow, SYNACK_ACKED, isn, seq)
        else:
            batch.results[i] = Result(flow, SYNACK, isn, seq)

    def _wait(self, batch: _Batch, wait: float) -> None:
        """Poll every TUN for the flows still unanswered until the barrier written to every TUN
        is answered (see the module's docstring; every TUN, as a reply goes out on the route to
        its client, whatever TUN the SYN came in on), for at most `wait` seconds in all."""
        if not batch.pending:
            return
        self._barriers.clear()
        for fd, ends in self._barrier_ends.items():
            self._barrier_seq = (self._barrier_seq + 1) & 0xFFFF
            self._barriers.add(self._barrier_seq)
            os.write(fd, echo_bytes(*ends, self._barrier_seq))
        # a TUN without barrier ends (not the standard topology's): only the deadline settles
        barred = len(self._barrier_ends) == len(self.fds)
        poller = select.poll()
        for fd in self.fds.values():
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + wait
        while batch.pending and (self._barriers or not barred):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for fd, _ in poller.poll(left * 1000):
                self._read(fd, batch)

    def drain(self) -> int:
        """Discard everything queued on every TUN; returns how many packets (not added to strays)."""
        count = 0
        for fd in self.fds.values():
            while True:
                try:
                    os.read(fd, _READ_SIZE)
                except BlockingIOError:
                    break
                count += 1
        return count
