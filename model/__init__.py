"""sockharness reference model: the kernel's TCP bind/listen tables in pure Python."""

from model.addr import SockAddr, parse_sockaddr
from model.host import Device, Host
from model.kernel import Kernel
from model.outcome import Outcome, PortChoice
from model.profiles import PROFILES, Profile, profile_for_release
from model.sockopt import SockOpt
from model.sysctl import Sysctls

__all__ = [
    "Device", "Host", "Kernel", "Outcome", "PortChoice", "PROFILES", "Profile", "SockAddr",
    "SockOpt", "Sysctls", "parse_sockaddr", "profile_for_release",
]
