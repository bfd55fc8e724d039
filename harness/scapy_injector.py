"""The benchmark baseline: TunInjector's loop with every packet built and parsed by scapy.

Same persistent TUN fds, same batching, matching and ACKing as harness.inject; only the bytes
come from `IP()/TCP()` and replies are dissected with `IP(raw)` / `IPv6(raw)` — the ordinary
scapy way, without sendp/sniff (docs/design.md, Kernel facts the harness relies on).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw

from harness.inject import MSS, TTL, WINDOW, Flow, TunInjector, payload_bytes


def _ip(flow: Flow) -> Packet:
    """The IP layer (v4 with DF and id 0, or v6) from the flow's client to its server."""
    if ":" in flow.src:
        return IPv6(src=flow.src, dst=flow.dst, hlim=TTL)
    return IP(src=flow.src, dst=flow.dst, ttl=TTL, id=0, flags="DF")


def scapy_syn(flow: Flow, seq: int) -> bytes:
    """The SYN as scapy builds it (MSS option, payload_bytes(flow) as data)."""
    tcp = TCP(sport=flow.sport, dport=flow.dport, flags="S", seq=seq, window=WINDOW, options=[("MSS", MSS)])
    pkt = _ip(flow) / tcp
    if flow.payload:
        pkt = pkt / Raw(payload_bytes(flow))
    return bytes(pkt)


def scapy_ack(flow: Flow, seq: int, ack: int) -> bytes:
    """The handshake-completing ACK as scapy builds it."""
    return bytes(_ip(flow) / TCP(sport=flow.sport, dport=flow.dport, flags="A", seq=seq, ack=ack, window=WINDOW))


def scapy_datagram(flow: Flow) -> bytes:
    """The UDP datagram as scapy builds it (payload_bytes(flow) as data)."""
    return bytes(_ip(flow) / UDP(sport=flow.sport, dport=flow.dport) / Raw(payload_bytes(flow)))


class ScapyInjector(TunInjector):
    """TunInjector with scapy building every SYN and ACK and parsing every reply."""

    def _open(self, flow: Flow, isn: int) -> tuple[Hashable, bytes]:
        """(server, client, server port, client port) in scapy's address spelling, and the SYN."""
        key = (str(ipaddress.ip_address(flow.dst)), str(ipaddress.ip_address(flow.src)), flow.dport, flow.sport)
        return key, scapy_syn(flow, isn)

    def _ack(self, flow: Flow, seq: int, ack: int) -> bytes:
        """The ACK, built by scapy."""
        return scapy_ack(flow, seq, ack)

    def datagram_bytes(self, flow: Flow) -> bytes:
        """The UDP datagram, built by scapy."""
        return scapy_datagram(flow)

    def _peek(self, packet: bytes) -> tuple[Hashable, int, int, int] | None:
        """Dissect with scapy: (key, flags, seq, ack) of a TCP packet, else None."""
        if not packet:
            return None
        pkt = IP(packet) if packet[0] >> 4 == 4 else IPv6(packet) if packet[0] >> 4 == 6 else None
        if pkt is None or TCP not in pkt:
            return None
        tcp = pkt[TCP]
        return (pkt.src, pkt.dst, tcp.sport, tcp.dport), int(tcp.flags), tcp.seq, tcp.ack
