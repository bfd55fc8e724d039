"""The namespace the model stands for: its devices and addresses (data given by the harness)."""

from __future__ import annotations

import enum
import functools
import ipaddress
from dataclasses import dataclass, field


class RouteType(enum.Enum):
    """The rtn_type that `inet_addr_type_table` returns for an address."""

    LOCAL = "RTN_LOCAL"
    UNICAST = "RTN_UNICAST"
    BROADCAST = "RTN_BROADCAST"
    MULTICAST = "RTN_MULTICAST"


@dataclass(frozen=True)
class Device:
    """A network device: its ifindex in the namespace and its addresses with prefixes."""

    name: str
    ifindex: int
    addresses: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()
    loopback: bool = False
    routes: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()  # dev routes (no gateway)


@dataclass(frozen=True)
class Host:
    """Devices of one network namespace, in ifindex order."""

    devices: tuple[Device, ...] = field(default_factory=tuple)

    def inet_addr_type(self, addr: ipaddress.IPv4Address,
                       network_broadcast: bool = False) -> RouteType:
        """__inet_dev_addr_type (net/ipv4/fib_frontend.c) against the local table that
        fib_add_ifaddr builds: a /32 RTN_LOCAL per address, the whole prefix RTN_LOCAL on a
        loopback device, and the network broadcast (prefix | ~mask) when prefixlen < 31. No
        device is compared: inet_addr_type_dev_table passes dev only to pick an L3 master's
        table, and __inet_dev_addr_type gets NULL. `network_broadcast`: the kernel also makes
        the network address (prefix) RTN_BROADCAST (Profile.network_address_broadcast)."""
        # ipv4_is_zeronet is addr == 0 only (include/linux/in.h: 0.0.0.0/8 is unicast since
        # 5.3), ipv4_is_lbcast is 255.255.255.255
        if int(addr) == 0 or addr == ipaddress.IPv4Address("255.255.255.255"):
            return RouteType.BROADCAST
        if addr.is_multicast:
            return RouteType.MULTICAST
        for d in self.devices:
            for iface in d.addresses:
                if not isinstance(iface, ipaddress.IPv4Interface):
                    continue
                if iface.ip == addr or (d.loopback and addr in iface.network):
                    kind = RouteType.LOCAL
                elif iface.network.prefixlen < 31 and (
                        addr == iface.network.broadcast_address
                        or (network_broadcast and addr == iface.network.network_address)):
                    kind = RouteType.BROADCAST
                else:
                    continue
                return kind
        return RouteType.UNICAST  # no match in the local table

    def ipv6_chk_addr(self, addr: ipaddress.IPv6Address, dev: int = 0) -> bool:
        """ipv6_chk_addr(net, addr, dev, 0): the address is on some device; with a device,
        host- and link-scope addresses must be on that one."""
        for d in self.devices:
            for iface in d.addresses:
                if isinstance(iface, ipaddress.IPv6Interface) and iface.ip == addr:
                    scoped = addr.is_loopback or addr.is_link_local
                    return not dev or not scoped or d.ifindex == dev
        return False

    def is_local(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """A destination the namespace delivers locally (a SYN to anything else is not ours)."""
        known = self._local_cache.get(addr)
        if known is None:
            if isinstance(addr, ipaddress.IPv6Address):
                known = self.ipv6_chk_addr(addr)
            else:
                known = self.inet_addr_type(addr) == RouteType.LOCAL
            self._local_cache[addr] = known
        return known

    def local_route_src(
        self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address
    ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The source a connection to a local address gets. IPv4: the local route's prefsrc,
        which fib_add_ifaddr sets to the primary address of the prefix (the first one added;
        later ones are IFA_F_SECONDARY, inet_ifa_byprefix). IPv6: ipv6_dev_get_saddr's rule 1,
        the destination itself."""
        if isinstance(addr, ipaddress.IPv6Address):
            return addr
        for d in self.devices:
            v4 = [i for i in d.addresses if isinstance(i, ipaddress.IPv4Interface)]
            for iface in v4:
                if iface.ip == addr:
                    return next(p.ip for p in v4 if p.network == iface.network)
        return addr

    def route_src(self, addr: ipaddress.IPv4Address) -> ipaddress.IPv4Address | None:
        """The source an unbound socket's packets to `addr` take: a local address's (see
        local_route_src), or for a device route, inet_select_addr of the device (its first
        primary IPv4 address: fib_select_default/FIB_RES_PREFSRC with no prefsrc set); None
        when no route holds it (ENETUNREACH)."""
        if self.is_local(addr):
            return ipaddress.IPv4Address(self.local_route_src(addr))
        for d in self.devices:
            if any(isinstance(r, ipaddress.IPv4Network) and addr in r for r in d.routes):
                v4 = [i.ip for i in d.addresses if isinstance(i, ipaddress.IPv4Interface)]
                return v4[0] if v4 else None
        return None

    @functools.cached_property
    def _local_cache(self) -> dict:
        return {}

    @property
    def ifindex(self) -> dict[str, int]:
        return {d.name: d.ifindex for d in self.devices}
