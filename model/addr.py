"""Socket addresses as scenarios write them: 10.0.0.1:8080, [::]:8080."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class SockAddr:
    """A family, an address and a port: what bind() and getsockname() carry."""

    family: int
    host: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int

    def __str__(self) -> str:
        if self.family == socket.AF_INET6:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"

    @property
    def sockaddr(self) -> tuple:
        """The tuple Python's socket module takes."""
        if self.family == socket.AF_INET6:
            return (str(self.host), self.port, 0, 0)
        return (str(self.host), self.port)


def parse_sockaddr(text: str) -> SockAddr:
    """'10.0.0.1:8080' or '[fd00::1]:8080'; ValueError with what was wrong."""
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise ValueError(f"expected [ipv6]:port, got {text!r}")
        host: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv6Address(
            text[1:close]
        )
        port_text = text[close + 2 :]
        family = socket.AF_INET6
    else:
        head, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"expected address:port, got {text!r}")
        host = ipaddress.IPv4Address(head)
        family = socket.AF_INET
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected a port 0-65535, got {port_text!r}")
    return SockAddr(family, host, int(port_text))
