"""One outcome type for both backends: what a step returned, and (model side) why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PortSet(Sequence[int]):
    """A sorted set of ports held without listing them (model.ephemeral.FreePorts: the free
    ports of a scan, thousands per step); equal to the tuple of its ports."""

    def runs(self) -> str:
        """The ports as _runs writes them."""
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PortSet):
            other = tuple(other)
        return isinstance(other, tuple) and tuple(self) == other

    def __hash__(self) -> int:
        return hash(tuple(self))


@dataclass(frozen=True)
class PortChoice:
    """The ports the kernel may pick at random in one step (an ephemeral port).

    The kernel draws a random offset (`get_random_u32_below`); the model enumerates every
    offset, so `ports` is exactly the set of results the kernel can return.
    """

    ports: tuple[int, ...] | PortSet
    rule: str  # which scan produced them, e.g. "inet_csk_find_open_port: lower half, odd"
    # some starting offsets find no port at all: the call may also fail (EADDRINUSE for
    # bind/listen, EADDRNOTAVAIL for connect), which the kernel reports as choice 0
    may_fail: bool = False

    def __contains__(self, port: object) -> bool:
        if isinstance(self.ports, PortSet):
            return port in self.ports
        return port in self._set

    @property
    def _set(self) -> frozenset[int]:
        cached = self.__dict__.get("_cached")
        if cached is None:
            cached = frozenset(self.ports)
            object.__setattr__(self, "_cached", cached)
        return cached

    def describe(self) -> str:
        """Ports as compact runs: '40001-40009/2, 40012' (step 2 marks one parity)."""
        n = len(self.ports)
        fail = ", or none" if self.may_fail else ""
        runs = self.ports.runs() if isinstance(self.ports, PortSet) else _runs(self.ports)
        return f"{n} port{'s' if n != 1 else ''} {runs}{fail} ({self.rule})"


RUNS_SHOWN = 6  # runs a description writes out before '... (N more runs)'


def _runs(ports: tuple[int, ...], limit: int = RUNS_SHOWN) -> str:
    if not ports:
        return "none"
    runs: list[str] = []
    i = 0
    while i < len(ports):
        j = i
        step = ports[i + 1] - ports[i] if i + 1 < len(ports) else 1
        if step not in (1, 2):
            step = 1
        while j + 1 < len(ports) and ports[j + 1] - ports[j] == step:
            j += 1
        if j == i:
            runs.append(str(ports[i]))
        else:
            runs.append(f"{ports[i]}-{ports[j]}" + ("/2" if step == 2 else ""))
        i = j + 1
    if len(runs) > limit:
        return ", ".join(runs[:limit]) + f", ... ({len(runs) - limit} more runs)"
    return ", ".join(runs)


@dataclass(frozen=True)
class Outcome:
    """What one step returned.

    value:      "0", an errno name ("EADDRINUSE"), a socket name, a count, an address.
    reason:     the model's one-line reason (kernel function and rule); "" on the kernel side.
    choice:     kernel side: what the kernel picked at random in this step (an ephemeral port, the
                listener a hash chose), for the model to follow when it could have picked it;
                0 when a port search found none.
    candidates: model side: every port the kernel may pick in this step (checked by property).
    one_of:     model side: the values the kernel may return when the model cannot say which
                (a reuseport pick by a hash it cannot compute); checked by property.
    random:     the value depends on a random kernel choice: in a model-only run it can't be
                compared with a recorded expectation, and `record` writes none for it.
    """

    value: str
    reason: str = ""
    choice: int | str | None = None
    candidates: PortChoice | None = None
    one_of: tuple[str, ...] = ()
    random: bool = False

    def __str__(self) -> str:
        return self.value
