"""The model side: a scenario's steps on model.Kernel, steered by the kernel's random choices."""

from __future__ import annotations

import functools
import ipaddress

from harness import steps as verbs
from harness.scenario import Scenario
from harness.steps import Executor, Step
from model.cbpf import payload_bytes
from model.host import Device, Host
from model.kernel import Kernel
from model.lookup import Hashes6, Syn
from model.outcome import Outcome
from model.profiles import Profile
from model.sysctl import Sysctls
from netns.topology import STANDARD, Topology


def host_of(topology: Topology = STANDARD) -> Host:
    """The model's view of the namespace: devices in creation order (ifindex 1, 2, …)."""
    return Host(tuple(
        Device(d.name, i, tuple(ipaddress.ip_interface(a) for a in d.addresses), loopback=d.name == "lo",
               routes=tuple(ipaddress.ip_network(r) for r in d.routes))
        for i, d in enumerate(topology.devices, start=1)
    ))


def sysctls_of(scenario: Scenario) -> Sysctls:
    s = Sysctls()
    for key, value in scenario.sysctls:
        s = s.with_setting(key, value)
    return s


def syn_of(step: verbs.FlowStep, cpu: int, topology: Topology = STANDARD) -> Syn:
    """The SYN a step injects, as the model's lookup sees it (ingress device, CPU, payload)."""
    src = step.src.host
    dif = _ingress(src) if topology is STANDARD else topology.ifindex[topology.client_device(str(src))]
    payload = payload_bytes(step.src.port, step.payload) if step.payload else b""
    return Syn(src, step.src.port, step.dst.host, step.dst.port, payload, dif, cpu)


@functools.lru_cache(maxsize=1 << 16)
def _ingress(src: ipaddress.IPv4Address | ipaddress.IPv6Address) -> int:
    """The ifindex of the standard topology's TUN routing a client address (per address once:
    hashing the topology for its own cache was most of a SYN's cost here)."""
    return STANDARD.ifindex[STANDARD.client_device(str(src))]


class ModelExecutor(Executor):
    """Runs a scenario on a fresh model Kernel. `choices[i]` is the kernel's pick at step i.

    hash_secret: the namespace's calibrated inet_ehashfn secret, or None (picks by hash are
    then predicted as 'one of the group'); hashes6: the kernel's inet6_ehashfn of the
    scenario's IPv6 tuples (model.lookup.Hashes6), likewise; udp_secret and udp_hashes6: the
    same for udp_ehashfn and udp6_ehashfn."""

    def __init__(self, profile: Profile, seed: int = 0, hash_secret: int | None = None,
                 hashes6: Hashes6 | None = None, udp_secret: int | None = None,
                 udp_hashes6: Hashes6 | None = None):
        self.profile, self.seed, self.hash_secret = profile, seed, hash_secret
        self.hashes6: Hashes6 = hashes6 or {}
        self.udp_secret = udp_secret
        self.udp_hashes6: Hashes6 = udp_hashes6 or {}

    def run(self, scenario: Scenario, choices: list[int | str | None] | None = None) -> list[Outcome]:
        self.kernel = Kernel(self.profile, host_of(), sysctls_of(scenario), seed=self.seed,
                             hash_secret=self.hash_secret, hashes6=self.hashes6, cpu=scenario.cpu,
                             udp_secret=self.udp_secret, udp_hashes6=self.udp_hashes6)
        self.fds: dict[str, int] = {}
        self.cpu = scenario.cpu
        self.injects = any(s.VERB.injected for s in scenario.steps)  # as Job.of decides it
        picks = choices or [None] * len(scenario.steps)
        out = []
        for s, c in zip(scenario.steps, picks, strict=True):
            if not s.VERB.keeps_queues:
                self.kernel.sweep()
            out.append(self.step(s, c))
        return out

    def step(self, step: Step, choice: int | str | None) -> Outcome:
        return self.handler(step)(step, choice)

    def do_socket(self, step: verbs.SocketStep, choice: object) -> Outcome:
        fd, out = self.kernel.socket(step.name, step.family, step.uid, step.proto)
        self.fds[step.name] = fd
        return out

    def do_setsockopt(self, step: verbs.SetsockoptStep, choice: object) -> Outcome:
        return self.kernel.setsockopt(self.fds[step.sock], step.option, step.value)

    def do_bind(self, step: verbs.BindStep, choice: int | str | None) -> Outcome:
        return self.kernel.bind(self.fds[step.sock], step.raw or step.addr, choice=_port(choice))

    def do_listen(self, step: verbs.ListenStep, choice: int | str | None) -> Outcome:
        out = self.kernel.listen(self.fds[step.sock], step.backlog, choice=_port(choice))
        if out.value == "0" and self.injects:
            # what the kernel backend does next (KernelExecutor.do_listen): SO_LINGER {1, 0}
            self.kernel.linger_abort(self.fds[step.sock])
        return out

    def do_close(self, step: verbs.CloseStep, choice: object) -> Outcome:
        return self.kernel.close(self.fds[step.sock])

    def do_getsockname(self, step: verbs.GetsocknameStep, choice: object) -> Outcome:
        return self.kernel.getsockname(self.fds[step.sock])

    def do_inuse(self, step: verbs.InuseStep, choice: object) -> Outcome:
        return self.kernel.inuse(step.family, step.proto)

    def do_syn(self, step: verbs.SynStep, choice: int | str | None) -> Outcome:
        return self.kernel.syn(syn_of(step, self.cpu), choice=_listener(choice))

    def do_dgram(self, step: verbs.DgramStep, choice: int | str | None) -> Outcome:
        return self.kernel.dgram(syn_of(step, self.cpu), choice=_listener(choice))

    def do_syn_only(self, step: verbs.SynOnlyStep, choice: int | str | None) -> Outcome:
        return self.kernel.syn_only(syn_of(step, self.cpu), choice=_listener(choice))

    def do_ack(self, step: verbs.AckStep, choice: int | str | None) -> Outcome:
        return self.kernel.ack(syn_of(step, self.cpu), choice=_listener(choice))

    def do_queue(self, step: verbs.QueueStep, choice: object) -> Outcome:
        return self.kernel.queue(self.fds[step.sock])

    def do_connect(self, step: verbs.ConnectStep, choice: int | str | None) -> Outcome:
        return self.kernel.connect(self.fds[step.sock], step.addr, choice=_port(choice))

    def do_accept(self, step: verbs.AcceptStep, choice: object) -> Outcome:
        fd, out = self.kernel.accept(self.fds[step.sock], step.name)
        self.fds[step.name] = fd if fd is not None else self.kernel.closed_fd(step.name)
        return out

    def do_tw(self, step: verbs.TwStep, choice: object) -> Outcome:
        return self.kernel.tw()

    def do_shutdown(self, step: verbs.ShutdownStep, choice: object) -> Outcome:
        return self.kernel.shutdown(self.fds[step.sock])

    def do_sockarray(self, step: verbs.SockarrayStep, choice: object) -> Outcome:
        return self.kernel.sockarray(step.map, step.entries)

    def do_map_update(self, step: verbs.MapUpdateStep, choice: object) -> Outcome:
        return self.kernel.map_update(step.map, step.key, self.fds[step.sock])

    def do_map_delete(self, step: verbs.MapDeleteStep, choice: object) -> Outcome:
        return self.kernel.map_delete(step.map, step.key)


def _port(choice: int | str | None) -> int | None:
    """The kernel's pick as a port (bind, listen, connect)."""
    return choice if isinstance(choice, int) else None


def _listener(choice: int | str | None) -> str | None:
    """The kernel's pick as a socket's name (syn, syn_only, ack: a listener; dgram: a receiver)."""
    return choice if isinstance(choice, str) else None
