"""The standard topology (docs/design.md, Topology), as data, and how to build it in the current namespace."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field

from pyroute2 import IPRoute

from netns import sysctl
from netns.tun import open_tun

IFA_F_NODAD = 0x02


@dataclass(frozen=True)
class DeviceSpec:
    """A device, its addresses, and the client ranges routed through it."""

    name: str
    addresses: tuple[str, ...]
    routes: tuple[str, ...] = ()
    tun: bool = True


@dataclass(frozen=True)
class Topology:
    devices: tuple[DeviceSpec, ...]

    @functools.lru_cache(maxsize=1 << 16)  # noqa: B019 - topologies are module constants
    def client_device(self, addr: str) -> str | None:
        """The TUN whose routed client range holds `addr` (where its SYNs are written)."""
        ip = ipaddress.ip_address(addr)
        best = None
        for dev in self.devices:
            for route in dev.routes:
                net = ipaddress.ip_network(route)
                if ip.version == net.version and ip in net and (best is None or net.prefixlen > best[1]):
                    best = (dev.name, net.prefixlen)
        return best[0] if best else None

    @functools.cached_property
    def server_addresses(self) -> tuple[str, ...]:
        """Addresses on TUN devices: where injected SYNs may go."""
        return tuple(str(ipaddress.ip_interface(a).ip) for d in self.devices if d.tun for a in d.addresses)

    @functools.cached_property
    def ifindex(self) -> dict[str, int]:
        """Devices are created in order in a fresh namespace: lo 1, then 2, 3, ..."""
        return {d.name: i for i, d in enumerate(self.devices, start=1)}


STANDARD = Topology(
    devices=(
        DeviceSpec("lo", ("127.0.0.1/8", "::1/128"), tun=False),
        DeviceSpec(
            "tun0", ("10.0.0.1/24", "10.0.0.2/24", "fd00::1/64", "fd00::2/64"),
            ("198.18.0.0/16", "2001:db8::/48"),
        ),
        DeviceSpec("tun1", ("10.1.0.1/24", "fd01::1/64"), ("198.19.0.0/16", "2001:db8:1::/48")),
    )
)


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
    return built
