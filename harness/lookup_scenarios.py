"""Verification runs for listener selection: scenarios generated from a seed, SO_REUSEPORT
groups of 2-256 listeners receiving batches of SYNs, with closes (middle, end) and re-listens
between batches. Every SYN is injected, its listener found by the accept sweep, and compared
with the model's exact prediction. Used by the 100,000-SYN kernel test and by `make bench`;
with `udp`, groups of UDP sockets receiving datagrams (the 100,000-datagram test)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.parser import parse_text
from harness.scenario import Scenario

ADDRS = ("0.0.0.0", "10.0.0.1")


@dataclass(frozen=True)
class Plan:
    """One generated scenario: a group, batches of SYNs, and changes between batches."""

    size: int
    batches: int
    batch: int
    addr: str = "0.0.0.0"
    port: int = 8080
    churn: bool = True  # close and re-listen members between batches
    udp: bool = False  # UDP sockets bound to the port, receiving datagrams, instead


class _Sources:
    """Distinct client tuples in 198.18.0.0/16 (tun0), so no SYN meets a queued connection."""

    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        i = self.n
        self.n += 1
        return f"198.18.{(i // 250) % 250 + 1}.{i % 250 + 1}:{1024 + (i // 62500) * 97 + (i * 13) % 60000}"


def scenario_text(plan: Plan, rng: random.Random) -> str:
    """The scenario for a plan: listen `size` sockets, then batches with churn between them."""
    kind = "UDP sockets" if plan.udp else "listeners"
    lines = [f"# generated verification run: group of {plan.size} {kind} on {plan.addr}:{plan.port}"]
    alive: list[str] = []
    made = 0
    src = _Sources()

    def listen_one() -> None:
        nonlocal made
        name = f"s{made}"
        made += 1
        lines.extend([f"{name} = socket(AF_INET, {'SOCK_DGRAM' if plan.udp else 'SOCK_STREAM'})",
                      f"setsockopt({name}, SO_REUSEPORT, 1)", f"bind({name}, {plan.addr}:{plan.port})"])
        if not plan.udp:
            lines.append(f"listen({name}, 4096)")
        alive.append(name)

    for _ in range(plan.size):
        listen_one()
    dst = "10.0.0.1"
    for b in range(plan.batches):
        verb = "dgram" if plan.udp else "syn"
        lines.extend(f"{verb}({src.next()} > {dst}:{plan.port})" for _ in range(plan.batch))
        lines.append("inuse(udp)" if plan.udp else "inuse(tcp)")
        if plan.churn and b + 1 < plan.batches and len(alive) > 1:
            # close one in the middle and one at the end of socks[] order, then re-listen one
            # a list, not a set: a set of names iterates in an order PYTHONHASHSEED changes, so
            # the same seed gave other scenarios in another process
            for victim in [alive[len(alive) // 2], alive[-1]] if len(alive) > 2 else [alive[-1]]:
                lines.append(f"close({victim})")
                alive.remove(victim)
            for _ in range(rng.randint(1, 2)):
                listen_one()
    return "\n".join(lines) + "\n"


def plans(total_syns: int, sizes: tuple[int, ...] = (2, 3, 8, 17, 64, 100, 256), batch: int = 500,
          batches: int = 4, udp: bool = False) -> Iterator[Plan]:
    """Plans cycling through group sizes until `total_syns` SYNs (or datagrams) are planned."""
    planned, i = 0, 0
    while planned < total_syns:
        size = sizes[i % len(sizes)]
        yield Plan(size, batches, batch, ADDRS[i % len(ADDRS)], udp=udp)
        planned += batches * batch
        i += 1


def scenarios(total_syns: int, seed: int = 0, **kw) -> list[Scenario]:
    rng = random.Random(seed)
    return [parse_text(Path(f"<verify-{i}-group{p.size}>"), scenario_text(p, rng))
            for i, p in enumerate(plans(total_syns, **kw))]
