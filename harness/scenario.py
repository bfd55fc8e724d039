"""A parsed scenario: its steps (the verb table, harness/steps.py), settings and kernel range.

The step types and version clauses are re-exported here, where scenario code looks for them.
"""

from __future__ import annotations

import operator
import socket
from dataclasses import dataclass, field
from pathlib import Path

from harness.steps import (
    STEP_TYPES,
    AcceptStep,
    AckStep,
    BindStep,
    CloseStep,
    ConnectStep,
    Expect,
    FlowStep,
    GetsocknameStep,
    InuseStep,
    ListenStep,
    QueueStep,
    SetsockoptStep,
    ShutdownStep,
    SocketStep,
    Step,
    SynOnlyStep,
    SynStep,
    TwStep,
    Verb,
)
from harness.versions import (
    DEFAULT_SPEC,
    UNCHECKED,
    Version,
    VersionClause,
    VersionSpan,
    version_text,
)
from model.sockopt import SockOpt

__all__ = [
    "DEFAULT_SPEC", "STEP_TYPES", "UNCHECKED", "AcceptStep", "AckStep", "BindStep", "CloseStep",
    "ConnectStep", "Expect", "FlowStep", "GetsocknameStep", "InuseStep", "KernelRange",
    "ListenStep", "QueueStep", "Scenario", "SetsockoptStep", "ShutdownStep", "SocketStep",
    "Step", "SynOnlyStep", "SynStep", "TwStep", "Verb", "Version", "VersionClause",
    "VersionSpan", "version_text",
]

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, ">": operator.gt,
        "<": operator.lt, "!=": operator.ne}


@dataclass(frozen=True)
class KernelRange:
    """`@kernel >= 4.6`: the profiles a scenario applies to."""

    op: str
    version: tuple[int, int]

    def admits(self, version: tuple[int, int]) -> bool:
        return _OPS[self.op](version, self.version)

    def __str__(self) -> str:
        return f"{self.op} {self.version[0]}.{self.version[1]}"


@dataclass(frozen=True)
class Scenario:
    """A parsed `.scn` file."""

    path: Path
    steps: tuple[Step, ...]
    sysctls: tuple[tuple[str, str], ...] = ()
    kernel: tuple[KernelRange, ...] = ()
    cpu: int = 0
    lines: tuple[str, ...] = field(default=(), repr=False)  # the source, for `record`

    @property
    def hashes_matter(self) -> bool:
        """Does a hash decide anything here: a lookup that picks a listener, and a socket with
        SO_REUSEPORT, whose group it may pick among (inet_hashtables.c:inet_reuseport_add_sock
        -> sock_reuseport.c:reuseport_select_sock)? Calibration and hash reads only then."""
        return (any(s.VERB.picks_listener for s in self.steps)
                and any(isinstance(s, SetsockoptStep) and s.option is SockOpt.SO_REUSEPORT
                        for s in self.steps))

    @property
    def udp_hashes_matter(self) -> bool:
        """Does udp_ehashfn decide anything here: an IPv4 datagram, and a socket with
        SO_REUSEPORT (a UDP group's pick; net/ipv4/udp.c:udp4_lib_lookup2)? Its own
        calibration only then."""
        return self._udp_hash_decides(socket.AF_INET)

    @property
    def udp_hashes6_matter(self) -> bool:
        """Does udp6_ehashfn decide anything (an IPv6 datagram, a socket with SO_REUSEPORT)?
        Its values are read from the kernel after the steps then."""
        return self._udp_hash_decides(socket.AF_INET6)

    def _udp_hash_decides(self, family: int) -> bool:
        return (any(s.VERB.picks_receiver and isinstance(s, FlowStep) and s.dst.family == family
                    for s in self.steps)
                and any(isinstance(s, SetsockoptStep) and s.option is SockOpt.SO_REUSEPORT
                        for s in self.steps))

    @property
    def feature(self) -> str:
        """The folder a scenario sits in names the feature it exercises."""
        return self.path.parent.name or "."
