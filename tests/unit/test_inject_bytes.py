"""harness.inject's precomputed bytes equal what scapy builds, checksums included; parse round-trips."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.packet import Packet, Raw

from harness import inject
from harness.inject import (
    ACK,
    BARRIER_ENDS,
    RST,
    SYN,
    Flow,
    Reply,
    TunInjector,
    ack_bytes,
    default_route,
    echo_bytes,
    echo_reply_seq,
    parse,
    payload_bytes,
    rst_bytes,
    syn_bytes,
)
from harness.scapy_injector import ScapyInjector, scapy_ack, scapy_syn
from model import cbpf

FLOWS = [
    Flow("198.18.3.4", 40000, "10.0.0.1", 8080),
    Flow("198.19.200.1", 1, "10.1.0.1", 65535, payload=8),
    Flow("198.18.0.9", 5555, "10.0.0.2", 80, payload=5),
    Flow("2001:db8::3:4", 40000, "fd00::1", 8080),
    Flow("2001:db8:1::ff", 65535, "fd01::1", 1, payload=8),
    Flow("2001:db8::9", 5555, "fd00::2", 443, payload=1),
]
SEQS = [0, 1, 0x7FFF_FFFF, 0xFFFF_FFFF, 0x1234_5678]


def _dissect(raw: bytes) -> Packet:
    return IPv6(raw) if raw[0] >> 4 == 6 else IP(raw)


def _rechecksummed(raw: bytes) -> bytes:
    """The packet as scapy rebuilds it with every checksum recomputed."""
    pkt = _dissect(raw)
    if IP in pkt:
        del pkt[IP].chksum
    del pkt[TCP].chksum
    return bytes(pkt)


def _ids(flow: Flow) -> str:
    return f"{flow.src}-{flow.payload}"


@pytest.mark.parametrize("flow", FLOWS, ids=_ids)
@pytest.mark.parametrize("seq", SEQS)
def test_syn_equals_scapy(flow, seq):
    ours = syn_bytes(flow, seq)
    assert ours == scapy_syn(flow, seq)
    assert _rechecksummed(ours) == ours
    pkt = _dissect(ours)
    tcp = pkt[TCP]
    assert (pkt.src, pkt.dst, tcp.sport, tcp.dport) == (flow.src, flow.dst, flow.sport, flow.dport)
    assert (tcp.seq, tcp.ack, str(tcp.flags), tcp.window) == (seq, 0, "S", 65535)
    assert tcp.options == [("MSS", 1460)]
    assert (pkt.hlim if IPv6 in pkt else pkt.ttl) == 64
    assert bytes(tcp.payload) == payload_bytes(flow)


@pytest.mark.parametrize("flow", FLOWS, ids=_ids)
@pytest.mark.parametrize("seq", SEQS)
def test_ack_and_rst_equal_scapy(flow, seq):
    ack = (seq * 7 + 3) & 0xFFFF_FFFF
    ours = ack_bytes(flow, seq, ack)
    assert ours == scapy_ack(flow, seq, ack)
    assert _rechecksummed(ours) == ours
    tcp = _dissect(ours)[TCP]
    assert (tcp.seq, tcp.ack, str(tcp.flags), len(tcp.payload)) == (seq, ack, "A", 0)
    rst = rst_bytes(flow, seq)
    assert _rechecksummed(rst) == rst
    assert str(_dissect(rst)[TCP].flags) == "R"


@pytest.mark.parametrize("flow", [FLOWS[0], FLOWS[3]], ids=_ids)
def test_checksum_zero_edge(flow):
    """The one's-complement sum 0xffff (checksum 0) is spelled as scapy spells it."""
    tcp = 40 if ":" in flow.src else 20
    for sport in range(1, 65536):
        f = Flow(flow.src, sport, flow.dst, flow.dport)
        raw = syn_bytes(f, 99)
        if raw[tcp + 16:tcp + 18] == b"\0\0":
            break
    else:
        pytest.fail("no sport gives checksum 0")
    assert raw == scapy_syn(f, 99) == _rechecksummed(raw)


def test_payload_bytes_first_word_is_sport():
    flow = Flow("198.18.0.1", 0xBEEF, "10.0.0.1", 80, payload=10)
    assert payload_bytes(flow) == b"\x00\x00\xbe\xef" + bytes(range(6))
    assert payload_bytes(Flow("198.18.0.1", 7, "10.0.0.1", 80, payload=600)) == cbpf.payload_bytes(7, 600)
    assert int.from_bytes(payload_bytes(flow)[:4], "big") == 0xBEEF
    assert payload_bytes(Flow("198.18.0.1", 1, "10.0.0.1", 80)) == b""


@pytest.mark.parametrize("flow", FLOWS, ids=_ids)
def test_parse_round_trips(flow):
    assert parse(syn_bytes(flow, 7)) == Reply(flow.src, flow.sport, flow.dst, flow.dport, SYN, 7, 0)
    assert parse(ack_bytes(flow, 7, 9)) == Reply(flow.src, flow.sport, flow.dst, flow.dport, ACK, 7, 9)
    assert parse(rst_bytes(flow, 7)) == Reply(flow.src, flow.sport, flow.dst, flow.dport, RST, 7, 0)


def test_parse_reads_a_kernel_style_reply():
    """A SYN-ACK with IPv4 options and several TCP options, built by scapy."""
    pkt = IP(src="10.0.0.1", dst="198.18.0.1", options=[b"\x01\x01\x01\x00"]) / TCP(
        sport=8080, dport=4000, flags="SA", seq=11, ack=22,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("WScale", 7)],
    )
    assert parse(bytes(pkt)) == Reply("10.0.0.1", 8080, "198.18.0.1", 4000, SYN | ACK, 11, 22)


@pytest.mark.parametrize("injector", [TunInjector, ScapyInjector])
@pytest.mark.parametrize("flow", FLOWS, ids=_ids)
def test_reply_key_matches_only_its_flow(injector, flow):
    """The key an injector expects for a flow is the one it reads off the kernel's reply."""
    inj = injector({})
    try:
        key, syn = inj._open(flow, 100)
        assert syn == syn_bytes(flow, 100)
        ip = IPv6(src=flow.dst, dst=flow.src) if ":" in flow.src else IP(src=flow.dst, dst=flow.src)
        synack = ip / TCP(sport=flow.dport, dport=flow.sport, flags="SA", seq=7, ack=101, options=[("MSS", 1400)])
        assert inj._peek(bytes(synack)) == (key, SYN | ACK, 7, 101)
        synack[TCP].dport ^= 1
        assert inj._peek(bytes(synack))[0] != key
    finally:
        inj.close()


def test_parse_rejects_non_tcp():
    assert parse(b"") is None
    assert parse(bytes(IP(src="10.0.0.1", dst="198.18.0.1") / UDP(sport=1, dport=2) / Raw(b"x" * 30))) is None
    assert parse(bytes(IPv6(src="fd00::1", dst="2001:db8::1") / UDP(sport=1, dport=2))) is None
    assert parse(b"\x00" * 60) is None


def test_default_route():
    assert default_route("198.18.7.7") == "tun0"
    assert default_route("2001:db8::1") == "tun0"
    assert default_route("198.19.0.1") == "tun1"
    assert default_route("2001:db8:1::1") == "tun1"
    with pytest.raises(ValueError):
        default_route("192.0.2.1")
    with pytest.raises(ValueError):
        default_route("2001:db8:2::1")


@pytest.mark.parametrize("seq", [0, 1, 0x1234, 0xFFFF])
def test_barrier_echo_equals_scapys_and_its_reply_is_recognised(seq):
    """_wait's barrier is the echo request scapy builds; the reply the kernel makes of it (type 0,
    same id and sequence, addresses swapped) is known by its sequence, anything else is not."""
    for tun, (src, dst) in BARRIER_ENDS.items():
        ours = echo_bytes(src, dst, seq)
        assert ours == bytes(IP(src=src, dst=dst, flags="DF", id=0, ttl=64) / ICMP(type=8, id=0x5348, seq=seq))
        reply = bytes(IP(src=dst, dst=src, ttl=64) / ICMP(type=0, id=0x5348, seq=seq))
        assert echo_reply_seq(reply) == seq
        assert echo_reply_seq(ours) is None  # the request itself
        assert echo_reply_seq(bytes(IP(src=dst, dst=src) / ICMP(type=0, id=1, seq=seq))) is None
        assert echo_reply_seq(syn_bytes(FLOWS[0], 1)) is None
        assert default_route(src) == tun  # the client end is routed by its own TUN


@pytest.mark.parametrize(("mask", "barred"), [("0", True), ("00000000,00000000", True), ("3", False),
                                              ("00000000,00000001", False), ("zz", False), (None, True)])
def test_no_barrier_where_new_devices_get_rps(mask, barred, tmp_path, monkeypatch):
    """Under RPS a SYN may be handled on another CPU after the write, out of order with the
    echo: the injector then settles unanswered flows by the wait alone."""
    path = tmp_path / "rps_default_mask"
    if mask is not None:
        path.write_text(mask + "\n")
    monkeypatch.setattr(inject, "RPS_DEFAULT_MASK", path)
    inj = TunInjector({"tun0": 99, "tun1": 98})
    try:
        assert bool(inj._barrier_ends) is barred
    finally:
        inj.close()
