"""UDP datagrams from virtual clients, as bytes, and the ICMP port unreachable the kernel sends
back for one no socket takes (__udp4_lib_rcv: icmp_send; __udp6_lib_rcv: icmpv6_send), matched
to its datagram by the header it quotes (RFC 792: the IP header and 8 bytes; RFC 4443: as much
of the packet as fits). The injector (harness/inject.py) writes and reads them."""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from harness.inject import Flow, _fold, _ip_header, _word_sum, payload_bytes

PROTO_UDP = 17
PROTO_ICMPV6 = 58
ICMP_DEST_UNREACH, ICMP_PORT_UNREACH = 3, 3
ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH = 1, 4
_UDP = struct.Struct("!HHHH")  # sport dport length checksum
_PORTS = struct.Struct("!HH")


class Datagram(NamedTuple):
    """A virtual client's datagram (the fields of a Flow: the injector writes either), as a dgram
    step travels to the worker."""

    src: str
    sport: int
    dst: str
    dport: int
    payload: int = 0


def datagram_key(flow: Flow | Datagram) -> bytes:
    """Client address, server address, client port, server port: what port_unreachable_key reads."""
    family = socket.AF_INET6 if ":" in flow.src else socket.AF_INET
    return (socket.inet_pton(family, flow.src) + socket.inet_pton(family, flow.dst)
            + _PORTS.pack(flow.sport, flow.dport))


def udp_bytes(flow: Flow | Datagram) -> bytes:
    """The datagram: IPv4 (DF) or IPv6 header, UDP header with its checksum over the
    pseudo-header (RFC 768; RFC 8200 §8.1), payload_bytes(flow) as data."""
    family = socket.AF_INET6 if ":" in flow.src else socket.AF_INET
    s, d = socket.inet_pton(family, flow.src), socket.inet_pton(family, flow.dst)
    data = payload_bytes(flow) if flow.payload else b""
    length = _UDP.size + len(data)
    total = (_word_sum(s + d) + PROTO_UDP + 2 * length + flow.sport + flow.dport
             + (_word_sum(data) if data else 0))
    csum = _fold(total) or 0xFFFF  # a computed 0 is sent as all ones (0 means none)
    return _ip_header(s, d, length, PROTO_UDP) + _UDP.pack(flow.sport, flow.dport, length, csum) + data


def port_unreachable_key(packet: bytes) -> bytes | None:
    """The datagram_key of the datagram an ICMP (or ICMPv6) port unreachable quotes, else None."""
    version = packet[0] >> 4 if packet else 0
    if version == 4:
        ihl = (packet[0] & 0x0F) * 4
        inner = ihl + 8
        if (len(packet) < inner + 20 or packet[9] != 1
                or packet[ihl] != ICMP_DEST_UNREACH or packet[ihl + 1] != ICMP_PORT_UNREACH):
            return None
        inner_ihl = (packet[inner] & 0x0F) * 4
        if packet[inner + 9] != PROTO_UDP or len(packet) < inner + inner_ihl + 4:
            return None
        return packet[inner + 12:inner + 20] + packet[inner + inner_ihl:inner + inner_ihl + 4]
    if version == 6:
        inner = 40 + 8
        if (len(packet) < inner + 44 or packet[6] != PROTO_ICMPV6
                or packet[40] != ICMPV6_DEST_UNREACH or packet[41] != ICMPV6_PORT_UNREACH
                or packet[inner + 6] != PROTO_UDP):
            return None
        return packet[inner + 8:inner + 40] + packet[inner + 40:inner + 44]
    return None
