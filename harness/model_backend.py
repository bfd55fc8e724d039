"""The model side: a scenario's steps on model.Kernel, steered by the kernel's random choices."""

from __future__ import annotations

import ipaddress
import socket

from harness.scenario import (
    KEEPS_QUEUES,
    AcceptStep,
    AckStep,
    BindStep,
    CloseStep,
    ConnectStep,
    GetsocknameStep,
    InuseStep,
    ListenStep,
    QueueStep,
    Scenario,
    SetsockoptStep,
    ShutdownStep,
    SocketStep,
    Step,
    SynOnlyStep,
    SynStep,
    TwStep,
)
from model.cbpf import payload_bytes
from model.host import Device, Host
from model.kernel import Kernel
from model.lookup import Syn
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


def syn_of(step: SynStep, cpu: int, topology: Topology = STANDARD) -> Syn:
    """The SYN a step injects, as the model's lookup sees it (ingress device, CPU, payload)."""
    dev = topology.client_device(str(step.src.host))
    return Syn(step.src.host, step.src.port, step.dst.host, step.dst.port,
               payload_bytes(step.src.port, step.payload), topology.ifindex[dev], cpu)


class ModelExecutor:
    """Runs a scenario on a fresh model Kernel. `choices[i]` is the kernel's pick at step i.

    hash_secret: the namespace's calibrated inet_ehashfn secret, or None (picks by hash are
    then predicted as 'one of the group')."""

    def __init__(self, profile: Profile, seed: int = 0, hash_secret: int | None = None):
        self.profile, self.seed, self.hash_secret = profile, seed, hash_secret

    def run(self, scenario: Scenario, choices: list[int | str | None] | None = None) -> list[Outcome]:
        self.kernel = Kernel(self.profile, host_of(), sysctls_of(scenario), seed=self.seed,
                             hash_secret=self.hash_secret, cpu=scenario.cpu)
        self.fds: dict[str, int] = {}
        self.cpu = scenario.cpu
        picks = choices or [None] * len(scenario.steps)
        out = []
        for s, c in zip(scenario.steps, picks, strict=True):
            if s.verb not in KEEPS_QUEUES:
                self.kernel.sweep()
            out.append(self.step(s, c))
        return out

    def step(self, step: Step, choice: int | str | None) -> Outcome:
        k = self.kernel
        if isinstance(step, SocketStep):
            fd, out = k.socket(step.name, step.family, step.uid)
            self.fds[step.name] = fd
            return out
        if isinstance(step, SetsockoptStep):
            return k.setsockopt(self.fds[step.sock], step.option, step.value)
        if isinstance(step, BindStep):
            return k.bind(self.fds[step.sock], step.raw or step.addr, choice=_port(choice))
        if isinstance(step, ListenStep):
            return k.listen(self.fds[step.sock], step.backlog, choice=_port(choice))
        if isinstance(step, CloseStep):
            return k.close(self.fds[step.sock])
        if isinstance(step, GetsocknameStep):
            return k.getsockname(self.fds[step.sock])
        if isinstance(step, InuseStep):
            return k.inuse(socket.AF_INET6 if step.proto == "tcp6" else socket.AF_INET)
        if isinstance(step, SynOnlyStep):
            return k.syn_only(syn_of(step, self.cpu), choice=choice if isinstance(choice, str) else None)
        if isinstance(step, AckStep):
            return k.ack(syn_of(step, self.cpu), choice=choice if isinstance(choice, str) else None)
        if isinstance(step, SynStep):
            return k.syn(syn_of(step, self.cpu), choice=choice if isinstance(choice, str) else None)
        if isinstance(step, QueueStep):
            return k.queue(self.fds[step.sock])
        if isinstance(step, ConnectStep):
            return k.connect(self.fds[step.sock], step.addr, choice=_port(choice))
        if isinstance(step, AcceptStep):
            fd, out = k.accept(self.fds[step.sock], step.name)
            self.fds[step.name] = fd if fd is not None else k.closed_fd(step.name)
            return out
        if isinstance(step, TwStep):
            return k.tw()
        if isinstance(step, ShutdownStep):
            return k.shutdown(self.fds[step.sock])
        raise TypeError(f"no model for {type(step).__name__}")


def _port(choice: int | str | None) -> int | None:
    return choice if isinstance(choice, int) else None
