"""Kernel versions in scenarios: the default expectation's kernel and version clauses."""

from __future__ import annotations

from dataclasses import dataclass

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
