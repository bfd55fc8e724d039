"""Scenario steps: what a `.scn` line asks for, as typed values both backends execute."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path

from model.addr import RawSockAddr, SockAddr
from model.sockopt import OptValue, SockOpt

Version = tuple[int, int]
# A clause value saying the version's outcome is a random kernel pick (an ephemeral port, a
# hash): nothing to check there, though the default names a value.
UNCHECKED = "*"
# The kernel whose outcomes the corpus's bare `= …` values were recorded on: a step's default
# expectation. Other versions state where they differ in version clauses (`[5.10: 0]`).
DEFAULT_SPEC = (6, 18)


def version_text(v: Version) -> str:
    return f"{v[0]}.{v[1]}"


@dataclass(frozen=True)
class VersionSpan:
    """`5.10` or `5.10-6.12`: the kernel versions a clause covers, both ends included."""

    low: Version
    high: Version

    def covers(self, v: Version) -> bool:
        return self.low <= v <= self.high

    def __str__(self) -> str:
        if self.low == self.high:
            return version_text(self.low)
        return f"{version_text(self.low)}-{version_text(self.high)}"


@dataclass(frozen=True)
class VersionClause:
    """`[5.10, 6.1: 0]`: the outcome on these kernel versions, where it differs from the
    default expectation (recorded from those kernels booted, never from the model)."""

    spans: tuple[VersionSpan, ...]
    value: str

    def covers(self, v: Version) -> bool:
        return any(s.covers(v) for s in self.spans)

    @property
    def label(self) -> str:
        return ", ".join(map(str, self.spans))

    def __str__(self) -> str:
        return f"[{self.label}: {self.value}]"


@dataclass(frozen=True)
class Step:
    """One line of a scenario. `call` is the source text of the call, `expect` the `= …`
    (the default expectation), `versions` the clauses of kernels that differ from it."""

    line: int
    call: str
    expect: str | None
    versions: tuple[VersionClause, ...] = field(default=(), kw_only=True)

    @property
    def verb(self) -> str:
        return type(self).__name__.removesuffix("Step").lower()

    def expected(self, spec: Version) -> tuple[str | None, str]:
        """The expectation on kernel version `spec`, and where it comes from: the clause's
        versions, or "default" (the bare `= …`)."""
        for clause in self.versions:
            if clause.covers(spec):
                return (None if clause.value == UNCHECKED else clause.value), clause.label
        return self.expect, "default"


@dataclass(frozen=True)
class SocketStep(Step):
    name: str
    family: int
    uid: int


@dataclass(frozen=True)
class SetsockoptStep(Step):
    sock: str
    option: SockOpt
    value: OptValue


@dataclass(frozen=True)
class BindStep(Step):
    sock: str
    addr: SockAddr
    raw: RawSockAddr | None = None  # family= / len= given: these bytes and length instead


@dataclass(frozen=True)
class ListenStep(Step):
    sock: str
    backlog: int


@dataclass(frozen=True)
class CloseStep(Step):
    sock: str


@dataclass(frozen=True)
class GetsocknameStep(Step):
    sock: str


@dataclass(frozen=True)
class InuseStep(Step):
    proto: str  # "tcp" or "tcp6"


@dataclass(frozen=True)
class SynStep(Step):
    """A full handshake from a virtual client; the outcome is the listener that got it."""

    src: SockAddr
    dst: SockAddr
    payload: int = 0


@dataclass(frozen=True)
class SynOnlyStep(SynStep):
    """A SYN and no ACK: SYNACK (a request socket), COOKIE, RST or DROP."""

    @property
    def verb(self) -> str:
        return "syn_only"


@dataclass(frozen=True)
class AckStep(SynStep):
    """The ACK completing what a syn_only step left open; the value is the listener that got
    the connection, RST or DROP."""

    @property
    def verb(self) -> str:
        return "ack"


@dataclass(frozen=True)
class QueueStep(Step):
    sock: str


@dataclass(frozen=True)
class ShutdownStep(Step):
    """shutdown(NAME): SHUT_RDWR; a listener stops listening and keeps its descriptor."""

    sock: str


@dataclass(frozen=True)
class ConnectStep(Step):
    """connect() to an address of the namespace; the handshake runs over loopback."""

    sock: str
    addr: SockAddr


@dataclass(frozen=True)
class AcceptStep(Step):
    """`s = accept(a) = c`: a non-blocking accept; the value names the connecting socket."""

    name: str
    sock: str


@dataclass(frozen=True)
class TwStep(Step):
    """`tw() = N`: sockstat's TCP "tw", the namespace's TIME_WAIT sockets."""


# Steps that leave the accept queues alone: handshakes pile up until any other step, when
# both backends sweep (accept, identify, reset every queued child).
KEEPS_QUEUES = frozenset({"syn", "syn_only", "ack", "accept", "queue", "inuse", "tw"})
# Verbs of connections made inside the namespace, and of injected ones; a scenario uses one
# kind (the sweep between syn batches accepts and resets every queued child).
LOCAL_CONNECTION_VERBS = frozenset({"connect"})
INJECTED_VERBS = frozenset({"syn", "syn_only", "ack"})


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
    def feature(self) -> str:
        """The folder a scenario sits in names the feature it exercises."""
        return self.path.parent.name or "."
