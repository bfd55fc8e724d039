"""Injected UDP datagrams: which socket receives each (model/udp_lookup.py), or the ICMP port
unreachable __udp4_lib_rcv / __udp6_lib_rcv sends when none does. On top of handshakes.py;
sockets.py builds on it."""

from __future__ import annotations

from model.kernel.handshakes import Handshakes
from model.outcome import Outcome
from model.udp_lookup import Datagram


class Datagrams(Handshakes):
    """The model's receive path for datagrams from virtual clients."""

    def dgram(self, d: Datagram, choice: str | None = None) -> Outcome:
        """A datagram from a virtual client: the socket that receives it (queued: the harness
        reads it off at once), ICMP when none does, DROP when its address is not local. Where
        a group picks by a hash the model cannot compute, it follows the kernel's `choice` if
        that is a member (and the same tuple goes to the same member again)."""
        if not self.host.is_local(d.dst):
            return Outcome("DROP", f"ip_route_input: {d.dst} is not a local address")
        found = self.udp_lookup.receiver(d)
        sk, reason, one_of = found.sk, found.reason, found.one_of
        if one_of:  # ("udp", …): a TCP SYN's tuple never shares its memory
            sk, reason = self._follow(("udp", d.src, d.sport, d.dst, d.dport), one_of, choice, reason)
        if sk is None:
            # __udp4_lib_rcv: no socket -> icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0);
            # __udp6_lib_rcv: icmpv6_send(skb, ICMPV6_DEST_UNREACH, ICMPV6_PORT_UNREACH, 0). The
            # harness's namespaces do not rate-limit them (netns/devices.py: empty ICMP ratemasks).
            return Outcome("ICMP", f"{reason}: the datagram is answered with an ICMP port unreachable")
        if one_of or found.hashed:
            self.hash_dependent = True
        return Outcome(sk.name, reason, one_of=tuple(s.name for s in one_of),
                       random=bool(one_of) or found.hashed)
