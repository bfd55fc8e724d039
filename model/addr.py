"""Socket addresses as scenarios write them: 10.0.0.1:8080, [::]:8080."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SockAddr:
    """A family, an address and a port: what bind() and getsockname() carry."""

    family: int
    host: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    text: str = field(init=False, repr=False, compare=False)  # the address alone, as text

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", host_text(self.host))  # once, not in a hot path

    def __reduce__(self) -> tuple:
        """Pickle compactly (scenarios travel to the namespace worker by the thousand)."""
        return _unpickle, (self.family, int(self.host), self.port, self.text)


    def __str__(self) -> str:
        if self.family == socket.AF_INET6:
            return f"[{self.text}]:{self.port}"
        return f"{self.text}:{self.port}"

    @property
    def sockaddr(self) -> tuple:
        """The tuple Python's socket module takes."""
        if self.family == socket.AF_INET6:
            return (self.text, self.port, 0, 0)
        return (self.text, self.port)


SOCKADDR_STORAGE = 128  # sizeof(struct sockaddr_storage)
SOCKADDR_IN = 16  # sizeof(struct sockaddr_in)
SIN6_LEN_RFC2133 = 24  # sockaddr_in6 without sin6_scope_id
SOCKADDR_IN6 = 28
AF_UNSPEC = 0


@dataclass(frozen=True)
class RawSockAddr:
    """The bytes a bind() passes and the length it claims: for family and length mismatches.

    Built from an address with its family field overwritten and the buffer cut or padded to
    `length` (the kernel reads at most sizeof(struct sockaddr_storage))."""

    data: bytes
    length: int

    @classmethod
    def of(cls, addr: SockAddr, family: int | None, length: int | None) -> RawSockAddr:
        if addr.family == socket.AF_INET6:
            body = struct.pack("!H", addr.port) + bytes(4) + addr.host.packed + bytes(4)
        else:
            body = struct.pack("!H", addr.port) + addr.host.packed + bytes(8)
        fam = addr.family if family is None else family
        data = struct.pack("=H", fam) + body
        n = len(data) if length is None else length
        data = (data + bytes(SOCKADDR_STORAGE))[: max(0, min(n, SOCKADDR_STORAGE))]
        return cls(data, n)

    def family(self) -> int:
        return struct.unpack("=H", self.padded()[:2])[0]

    def padded(self) -> bytes:
        return self.data + bytes(SOCKADDR_STORAGE - len(self.data))

    def as_in(self) -> SockAddr:
        """Read as struct sockaddr_in (family, port, sin_addr)."""
        b = self.padded()
        return SockAddr(socket.AF_INET, ipaddress.IPv4Address(b[4:8]), struct.unpack("!H", b[2:4])[0])

    def as_in6(self) -> SockAddr:
        """Read as struct sockaddr_in6 (family, port, flowinfo, sin6_addr)."""
        b = self.padded()
        return SockAddr(socket.AF_INET6, ipaddress.IPv6Address(b[8:24]), struct.unpack("!H", b[2:4])[0])


def host_text(host: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """An address as inet_ntop writes it (v4-mapped as ::ffff:a.b.c.d, which the kernel's
    getsockname users see, unlike ipaddress' ::ffff:a00:1 before Python 3.13)."""
    if isinstance(host, ipaddress.IPv6Address):
        return socket.inet_ntop(socket.AF_INET6, host.packed)
    return str(host)


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
        family = int(socket.AF_INET6)  # plain ints: cheap to pickle to the worker
    else:
        head, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"expected address:port, got {text!r}")
        host = ipaddress.IPv4Address(head)
        family = int(socket.AF_INET)
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"expected a port 0-65535, got {port_text!r}")
    return SockAddr(family, host, int(port_text))


def _unpickle(family: int, ip: int, port: int, text: str) -> SockAddr:
    sa = object.__new__(SockAddr)
    host = ipaddress.IPv6Address(ip) if family == socket.AF_INET6 else ipaddress.IPv4Address(ip)
    for name, value in (("family", family), ("host", host), ("port", port), ("text", text)):
        object.__setattr__(sa, name, value)
    return sa
