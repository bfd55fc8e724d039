"""harness.inject_udp's datagram bytes equal what scapy builds (checksums included), and the ICMP
port unreachable a kernel sends for one is matched back to it, both families."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, UDP, IPerror, UDPerror
from scapy.layers.inet6 import ICMPv6DestUnreach, IPerror6, IPv6
from scapy.packet import Raw

from harness.inject import Flow, payload_bytes
from harness.inject_udp import datagram_key, port_unreachable_key, udp_bytes

FLOWS = [
    Flow("198.18.3.4", 40000, "10.0.0.1", 5353),
    Flow("198.19.200.1", 1, "10.1.0.1", 65535, payload=8),
    Flow("198.18.0.9", 5555, "10.0.0.2", 53, payload=5),
    Flow("2001:db8::3:4", 40000, "fd00::1", 5353),
    Flow("2001:db8:1::ff", 65535, "fd01::1", 1, payload=8),
    Flow("2001:db8::9", 5555, "fd00::2", 443, payload=1),
]


def _scapy(flow: Flow) -> bytes:
    data = Raw(payload_bytes(flow)) if flow.payload else Raw(b"")
    if ":" in flow.src:
        return bytes(IPv6(src=flow.src, dst=flow.dst, hlim=64) / UDP(sport=flow.sport, dport=flow.dport) / data)
    return bytes(IP(src=flow.src, dst=flow.dst, ttl=64, flags="DF", id=0)
                 / UDP(sport=flow.sport, dport=flow.dport) / data)


@pytest.mark.parametrize("flow", FLOWS, ids=str)
def test_datagram_bytes_are_scapys(flow):
    assert udp_bytes(flow) == _scapy(flow)


def test_a_checksum_of_zero_is_sent_as_all_ones():
    """RFC 768: a computed 0 is transmitted as 0xffff (0 means no checksum); scapy agrees."""
    for sport in range(1, 1 << 16):
        flow = Flow("198.18.0.1", sport, "10.0.0.1", 5353)
        raw = udp_bytes(flow)
        if raw[26:28] == b"\xff\xff":
            assert raw == _scapy(flow)
            return
    pytest.fail("no port gave a zero checksum")


@pytest.mark.parametrize("flow", FLOWS, ids=str)
def test_a_port_unreachable_is_matched_to_its_datagram(flow):
    sent = udp_bytes(flow)
    if ":" in flow.src:
        reply = bytes(IPv6(src=flow.dst, dst=flow.src) / ICMPv6DestUnreach(code=4) / IPerror6(sent))
        other = bytes(IPv6(src=flow.dst, dst=flow.src) / ICMPv6DestUnreach(code=1) / IPerror6(sent))
    else:
        reply = bytes(IP(src=flow.dst, dst=flow.src) / ICMP(type=3, code=3) / IPerror(sent[:28]))
        other = bytes(IP(src=flow.dst, dst=flow.src) / ICMP(type=3, code=1) / IPerror(sent[:28]))
    assert port_unreachable_key(reply) == datagram_key(flow)
    assert port_unreachable_key(other) is None  # host unreachable: not a port's answer
    assert port_unreachable_key(sent) is None and port_unreachable_key(b"") is None


def test_a_quoted_tcp_segment_is_no_datagrams_answer():
    syn = bytes(IP(src="198.18.0.1", dst="10.0.0.1") / UDPerror(sport=1, dport=2))
    tcp_quote = bytearray(bytes(IP(src="10.0.0.1", dst="198.18.0.1") / ICMP(type=3, code=3) / IPerror(syn)))
    tcp_quote[28 + 9] = 6  # the quoted header says TCP
    assert port_unreachable_key(bytes(tcp_quote)) is None


@pytest.mark.parametrize("flow", FLOWS, ids=str)
def test_the_scapy_baseline_builds_the_same_datagram(flow):
    from harness.scapy_injector import scapy_datagram

    assert scapy_datagram(flow) == udp_bytes(flow)
