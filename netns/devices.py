"""Builds a topology (netns/topology.py) in the current, fresh namespace: TUN devices,
addresses, routes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from pyroute2 import IPRoute

from netns import sysctl
from netns.topology import STANDARD, Topology
from netns.tun import open_tun

IFA_F_NODAD = 0x02


@dataclass
class Built:
    """What building left open: TUN fds (the devices live while these are open) and ifindexes."""

    tun_fds: dict[str, int] = field(default_factory=dict)
    ifindex: dict[str, int] = field(default_factory=dict)


def build(topology: Topology = STANDARD) -> Built:
    """Create and configure every device in the current (fresh) namespace."""
    built = Built()
    for dev in topology.devices:
        if dev.tun:
            built.tun_fds[dev.name] = open_tun(dev.name)
    with IPRoute() as ipr:
        for dev in topology.devices:
            idx = ipr.link_lookup(ifname=dev.name)[0]
            built.ifindex[dev.name] = idx
            for cidr in dev.addresses:
                iface = ipaddress.ip_interface(cidr)
                existing = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx)}
                if str(iface.ip) in existing:
                    continue
                kw = {"flags": IFA_F_NODAD} if iface.version == 6 else {}
                ipr.addr("add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen, **kw)
            ipr.link("set", index=idx, state="up")
            for route in dev.routes:
                ipr.route("add", dst=route, oif=idx)
    # A namespace serves many scenarios; tcp_metrics would carry a peer's RTT from one to the
    # next and make it "proven" (tcp_input.c:tcp_conn_request -> tcp_metrics.c:
    # tcp_peer_is_proven), exempting it from the last quarter of tcp_max_syn_backlog. The model's
    # peers are never proven: save no metrics (tcp_metrics.c:tcp_update_metrics returns early).
    sysctl.write("net.ipv4.tcp_no_metrics_save", "1")
    # An ICMP error of a type in the namespace's ratemask is limited per peer and globally
    # (net/ipv4/icmp.c:icmpv4_global_allow, icmpv4_xrlim_allow; net/ipv6/icmp.c the same), so
    # a port unreachable may not come back; with empty masks (icmpv4_mask_allow,
    # icmpv6_mask_allow) every datagram to a port no socket holds is answered.
    sysctl.write("net.ipv4.icmp_ratemask", "0")
    sysctl.write("net.ipv6.icmp.ratemask", "")
    return built
