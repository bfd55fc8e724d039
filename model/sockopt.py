"""Socket options the model understands, and what setting them does (net/core/sock.c,
net/ipv6/ipv6_sockglue.c, net/core/sock_reuseport.c)."""

from __future__ import annotations

import enum
import socket

from model.cbpf import Program
from model.ebpf import Attached, EbpfProgram
from model.reuseport import ReuseportGroup, reuseport_update_incoming_cpu
from model.sock import SK_CAN_REUSE, SK_NO_REUSE, Proto, Sock


class SockOpt(enum.Enum):
    """Options by the name scenarios use; the value is (level, option name, value kind)."""

    SO_REUSEADDR = ("SOL_SOCKET", "SO_REUSEADDR", "int")
    SO_REUSEPORT = ("SOL_SOCKET", "SO_REUSEPORT", "int")
    SO_INCOMING_CPU = ("SOL_SOCKET", "SO_INCOMING_CPU", "int")
    SO_BINDTODEVICE = ("SOL_SOCKET", "SO_BINDTODEVICE", "device")
    IPV6_V6ONLY = ("IPPROTO_IPV6", "IPV6_V6ONLY", "int")
    SO_ATTACH_REUSEPORT_CBPF = ("SOL_SOCKET", "SO_ATTACH_REUSEPORT_CBPF", "program")
    SO_ATTACH_REUSEPORT_EBPF = ("SOL_SOCKET", "SO_ATTACH_REUSEPORT_EBPF", "ebpf")
    SO_DETACH_REUSEPORT_BPF = ("SOL_SOCKET", "SO_DETACH_REUSEPORT_BPF", "int")
    IP_FREEBIND = ("IPPROTO_IP", "IP_FREEBIND", "int")
    IP_BIND_ADDRESS_NO_PORT = ("IPPROTO_IP", "IP_BIND_ADDRESS_NO_PORT", "int")
    IP_LOCAL_PORT_RANGE = ("IPPROTO_IP", "IP_LOCAL_PORT_RANGE", "portrange")  # 6.3+

    @property
    def kind(self) -> str:
        return self.value[2]


OptValue = int | str | Program | EbpfProgram | Attached  # Attached: an EbpfProgram loaded


def option_int(value: int) -> int:
    """What the kernel reads from an int option: 4 bytes as a C int (net/core/sock.c
    sk_setsockopt: copy_from_sockptr(&val, optval, sizeof(val)); do_ip_setsockopt and
    do_ipv6_setsockopt the same), so 4294967295 is -1. ValueError if the value needs more than
    4 bytes, which a C program passing an int (or unsigned int) cannot write."""
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"expected an option value that fits a C int or unsigned int "
                         f"(-2147483648..4294967295), got {value}")
    return value - (1 << 32) if value >= (1 << 31) else value


def setsockopt(sk: Sock, opt: SockOpt, value: OptValue, ifindex: dict[str, int],
               hashed: bool, attach_needs_reuseport: bool = True,
               local_port_range_opt: bool = True) -> tuple[str, str]:
    """The option's effect on sk: (errno name or "0", reason). `hashed` is !sk_unhashed(sk);
    attach_needs_reuseport and local_port_range_opt are the profile fields of those names."""
    if opt is SockOpt.SO_REUSEADDR:
        sk.reuse = SK_CAN_REUSE if value else SK_NO_REUSE  # sk_setsockopt: SO_REUSEADDR
        return "0", f"sk_setsockopt: sk_reuse = {'SK_CAN_REUSE' if value else 'SK_NO_REUSE'}"
    if opt is SockOpt.SO_REUSEPORT:
        sk.reuseport = bool(value)  # sk_setsockopt: SO_REUSEPORT (inet sockets)
        return "0", f"sk_setsockopt: sk_reuseport = {int(bool(value))}"
    if opt is SockOpt.SO_INCOMING_CPU:
        assert isinstance(value, int)
        reuseport_update_incoming_cpu(sk, value)
        return "0", f"reuseport_update_incoming_cpu: sk_incoming_cpu = {value}"
    if opt is SockOpt.SO_BINDTODEVICE:
        return _bindtodevice(sk, str(value), ifindex)
    if opt is SockOpt.IPV6_V6ONLY:
        if sk.family != socket.AF_INET6:
            return "ENOPROTOOPT", "ip_setsockopt: level IPPROTO_IPV6 on an AF_INET socket"
        if sk.num:
            return "EINVAL", "do_ipv6_setsockopt: IPV6_V6ONLY after bind (inet_num set)"
        sk.ipv6only = bool(value)
        return "0", f"do_ipv6_setsockopt: sk_ipv6only = {int(bool(value))}"
    if opt is SockOpt.SO_ATTACH_REUSEPORT_CBPF:
        assert isinstance(value, Program)
        return _attach(sk, value, hashed, attach_needs_reuseport)
    if opt is SockOpt.SO_ATTACH_REUSEPORT_EBPF:
        # sk_reuseport_attach_bpf: a BPF_PROG_TYPE_SK_REUSEPORT program on a TCP socket takes
        # the same reuseport_attach_prog as a classic one
        assert isinstance(value, Attached)
        return _attach(sk, value, hashed, attach_needs_reuseport)
    if opt is SockOpt.SO_DETACH_REUSEPORT_BPF:
        return _detach(sk, hashed)
    if opt is SockOpt.IP_FREEBIND:
        # do_ip_setsockopt: inet_assign_bit(FREEBIND); AF_INET6 sockets reach it through
        # ipv6_setsockopt's SOL_IP branch, and IPV6_FREEBIND sets the same bit
        sk.freebind = bool(value)
        return "0", f"do_ip_setsockopt: FREEBIND = {int(bool(value))}"
    if opt is SockOpt.IP_BIND_ADDRESS_NO_PORT:
        sk.bind_address_no_port = bool(value)
        return "0", f"do_ip_setsockopt: BIND_ADDRESS_NO_PORT = {int(bool(value))}"
    if opt is SockOpt.IP_LOCAL_PORT_RANGE:
        if not local_port_range_opt:
            # do_ip_setsockopt has no such case before 6.3: default, ENOPROTOOPT (AF_INET6
            # sockets reach it through ipv6_setsockopt's SOL_IP branch)
            return "ENOPROTOOPT", "do_ip_setsockopt: no IP_LOCAL_PORT_RANGE before 6.3"
        assert isinstance(value, int)
        lo, hi = value & 0xFFFF, value >> 16
        if lo and hi and lo > hi:  # do_ip_setsockopt: IP_LOCAL_PORT_RANGE
            return "EINVAL", f"do_ip_setsockopt: IP_LOCAL_PORT_RANGE low {lo} > high {hi}"
        sk.local_port_range = value
        return "0", f"do_ip_setsockopt: local_port_range = {lo}-{hi}"
    raise ValueError(f"unsupported option {opt}")


def _bindtodevice(sk: Sock, name: str, ifindex: dict[str, int]) -> tuple[str, str]:
    """sock_setbindtodevice -> sock_bindtoindex_locked: changing an existing binding needs
    CAP_NET_RAW (uid 0 here); TCP has no rehash, so the bind buckets keep the old device."""
    if name and name not in ifindex:
        return "ENODEV", f"sock_setbindtodevice: no device {name!r}"
    index = ifindex[name] if name else 0
    if sk.bound_dev_if and sk.uid != 0:
        return "EPERM", "sock_bindtoindex_locked: already bound to a device, no CAP_NET_RAW"
    sk.bound_dev_if = index
    return "0", f"sock_bindtoindex_locked: sk_bound_dev_if = {index} ({name or 'none'})"


def _attach(sk: Sock, prog: Program | Attached, hashed: bool, needs_reuseport: bool) -> tuple[str, str]:
    """sk_reuseport_attach_filter -> reuseport_attach_prog: an unhashed SO_REUSEPORT socket
    gets a group of its own first (reuseport_alloc), a hashed one must already be in one.
    Without needs_reuseport (before 5.14) an unhashed socket whose SO_REUSEPORT was cleared
    after an earlier attach still has that group, and the program replaces its program."""
    from model.reuseport import reuseport_alloc

    if not hashed and (sk.reuseport or needs_reuseport):
        if not sk.reuseport:
            return "EINVAL", "reuseport_attach_prog: SO_REUSEPORT is not set"
        reuseport_alloc(sk, False)
    elif sk.reuseport_cb is None:
        hashed_as = "bound" if sk.proto is Proto.UDP else "listening"  # in udptable / lhash2
        return "EINVAL", f"reuseport_attach_prog: {hashed_as} without a reuseport group"
    group: ReuseportGroup = sk.reuseport_cb  # type: ignore[assignment]
    group.prog = prog
    kind = "eBPF" if isinstance(prog, Attached) else "cBPF"
    return "0", f"reuseport_attach_prog: group {group.describe()} runs {kind} {prog}"


def _detach(sk: Sock, hashed: bool) -> tuple[str, str]:
    """reuseport_detach_prog."""
    group = sk.reuseport_cb
    if group is None:
        return ("ENOENT" if sk.reuseport else "EINVAL"), "reuseport_detach_prog: no reuseport group"
    if not hashed and group.num_closed_socks:
        return "ENOENT", "reuseport_detach_prog: a closed member"
    had = group.prog
    group.prog = None
    if had is None:
        return "ENOENT", "reuseport_detach_prog: no program attached"
    return "0", f"reuseport_detach_prog: group {group.describe()} back to the hash"
