"""The model side: a scenario's steps on model.Kernel, steered by the kernel's random choices."""

from __future__ import annotations

import ipaddress

from harness.scenario import (
    BindStep,
    CloseStep,
    GetsocknameStep,
    InuseStep,
    ListenStep,
    Scenario,
    SetsockoptStep,
    SocketStep,
    Step,
)
from model.host import Device, Host
from model.kernel import Kernel
from model.outcome import Outcome
from model.profiles import Profile
from model.sysctl import Sysctls
from netns.topology import STANDARD, Topology


def host_of(topology: Topology = STANDARD) -> Host:
    """The model's view of the namespace: devices in creation order (ifindex 1, 2, …)."""
    return Host(tuple(
        Device(d.name, i, tuple(ipaddress.ip_interface(a) for a in d.addresses), loopback=d.name == "lo")
        for i, d in enumerate(topology.devices, start=1)
    ))


def sysctls_of(scenario: Scenario) -> Sysctls:
    s = Sysctls()
    for key, value in scenario.sysctls:
        s = s.with_setting(key, value)
    return s


class ModelExecutor:
    """Runs a scenario on a fresh model Kernel. `choices[i]` is the kernel's pick at step i."""

    def __init__(self, profile: Profile, seed: int = 0):
        self.profile, self.seed = profile, seed

    def run(self, scenario: Scenario, choices: list[int | None] | None = None) -> list[Outcome]:
        self.kernel = Kernel(self.profile, host_of(), sysctls_of(scenario), seed=self.seed)
        self.fds: dict[str, int] = {}
        picks = choices or [None] * len(scenario.steps)
        return [self.step(s, c) for s, c in zip(scenario.steps, picks, strict=True)]

    def step(self, step: Step, choice: int | None) -> Outcome:
        k = self.kernel
        if isinstance(step, SocketStep):
            fd, out = k.socket(step.name, step.family, step.uid)
            self.fds[step.name] = fd
            return out
        if isinstance(step, SetsockoptStep):
            return k.setsockopt(self.fds[step.sock], step.option, step.value)
        if isinstance(step, BindStep):
            return k.bind(self.fds[step.sock], step.addr, choice=choice)
        if isinstance(step, ListenStep):
            return k.listen(self.fds[step.sock], step.backlog, choice=choice)
        if isinstance(step, CloseStep):
            return k.close(self.fds[step.sock])
        if isinstance(step, GetsocknameStep):
            return k.getsockname(self.fds[step.sock])
        if isinstance(step, InuseStep):
            return k.inuse()
        raise TypeError(f"no model for {type(step).__name__}")
