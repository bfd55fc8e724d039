"""The standard topology (docs/design.md, Topology), as data: pure, so the scenario language and
the model read it without loading the netlink side (netns/devices.py builds it)."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass


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
