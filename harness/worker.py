"""Worker processes, one per namespace, and the pool that owns them.

A worker is a forked child that enters its namespace for good, builds the standard topology
(its TUN fds keep the devices alive), and runs scenarios sent over a pipe. It ignores SIGINT
and dies with its parent (PR_SET_PDEATHSIG, armed again after every uid change, which clears
it), and it closes its copy of the parent's end of the pipe, so a dead parent is also an EOF:
Ctrl-C and kill -9 of a run leave no worker.
The parent removes the namespace; a namespace left by a killed parent is reaped on the next
start. After every scenario the worker resets: sockets closed, sysctls restored, and the
namespace proven clean (TCP inuse and tw 0, UDP and UDP6 inuse 0), else the pool replaces it. A step the worker
fails to run (a harness bug) is that scenario's error, its kernel value HARNESS_ERROR(…) and
the rest NOT_RUN: the run goes on and the report says what broke.
"""

from __future__ import annotations

import collections
import gc
import multiprocessing as mp
import os
import queue
import resource
import signal
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection

from harness.calibrate import Observation, calibrate_here_or_host, probe_reuseport, probe_udp_reuseport
from harness.environment import EnvironmentProblem
from harness.inject import Flow
from harness.kernel_backend import (
    Job,
    KernelExecutor,
    apply_sysctls,
    die_with_parent,
    failed_job,
    restore_sysctls,
)
from harness.scenario import Scenario
from harness.signals import deferred
from model.outcome import Outcome
from model.sysctl import KEYS
from netns import devices, namespace, sysctl
from netns.counters import SOCKSTAT6, read_sockstat, synack_retransmits

_STOP = object()  # ends a Worker's sender thread
READY_TIMEOUT = 30.0
SCENARIO_TIMEOUT = 120.0


@dataclass
class Calibration:
    """What calibration found: every secret that fits (one, or none when the profile's
    inet_ehashfn is not the kernel's), from which observations, and how long it took."""

    lport_outside: bool
    fits: list[int]
    observations: list[Observation]
    probe_seconds: float
    search_seconds: float
    fn: str = "inet_ehashfn"  # or udp_ehashfn: the function whose secret this is

    @property
    def secret(self) -> int | None:
        return self.fits[0] if len(self.fits) == 1 else None

    @property
    def problem(self) -> str:
        if len(self.fits) == 1:
            return ""
        variant = "lport + jhash_3words(laddr, faddr, fport)" if self.lport_outside else \
            "jhash_3words(laddr, faddr, lport << 16 | fport)"
        if not self.fits:
            return (f"hash formula: no secret makes {self.fn} = {variant} give the "
                    f"{len(self.observations)} observed reuseport picks")
        return f"hash formula: {len(self.fits)} secrets fit {len(self.observations)} observations"


# the worker's probes by message: of inet_ehashfn (TCP listeners) and udp_ehashfn (UDP sockets)
PROBES = {"probe": probe_reuseport, "probe-udp": probe_udp_reuseport}


@dataclass
class WorkerReply:
    outcomes: list[Outcome]
    clean: bool
    dirt: str = ""
    seconds: float = 0.0  # time the worker spent running the steps
    unsettled: bool = False  # a closed socket stayed an orphan (KernelExecutor.do_close)
    retransmits: int = 0  # SYN-ACKs the request timer sent again during the steps
    hashes6: dict | None = None  # the kernel's inet6_ehashfn of the job's IPv6 flows (hashprobe)
    hashes6_problem: str = ""  # why they could not be read (the picks are then checked by property)
    udp_hashes6: dict | None = None  # the kernel's udp6_ehashfn of the job's IPv6 datagrams


def _injector_class(kind: str) -> type:
    """The SYN injector a worker uses: precomputed bytes ("tun") or scapy-built ("scapy",
    the benchmark's baseline)."""
    if kind == "scapy":
        from harness.scapy_injector import ScapyInjector

        return ScapyInjector
    from harness.inject import TunInjector

    return TunInjector


def _worker_main(name: str, conn: Connection, injector: str, parent: int, parent_end: Connection) -> None:
    # The parent's end came with the fork: held here too, a dead parent would never be an EOF.
    parent_end.close()
    die_with_parent(parent)  # exits now if the parent is already gone
    namespace.mark_worker()  # how the reaper knows it, should it outlive its parent anyway
    # Runs of thousands of steps allocate many small objects: collect rarely.
    gc.set_threshold(200_000, 50, 100)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        _serve(name, conn, injector)
    except (BrokenPipeError, ConnectionResetError):
        return  # the parent is gone: nobody to answer


def _serve(name: str, conn: Connection, injector: str) -> None:
    try:
        unlimit_memlock()
        namespace.enter(name)
        if namespace.current_is_host():
            raise EnvironmentProblem("worker is still in the host's namespace after setns")
        built = devices.build()
        defaults = tuple((k, sysctl.read(k)) for k in KEYS)
        conn.send(("ready", built.ifindex))
    except BaseException as e:  # report anything: the parent turns it into an exit 2
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    executor = KernelExecutor(built.tun_fds, _injector_class(injector))
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        if msg in PROBES:
            try:
                conn.send(("probed", PROBES[msg](built.tun_fds)))
            except BaseException:
                conn.send(("error", traceback.format_exc()))
                return
            continue
        job: Job = msg
        try:
            t0, rtx = time.perf_counter(), synack_retransmits()
            outcomes, dirt = _run_job(executor, job)
            busy, rtx = time.perf_counter() - t0, synack_retransmits() - rtx
            restore_sysctls(defaults)
            stat = read_sockstat()
            tcp = stat["TCP"]
            left = [k for k, v in defaults if sysctl.read(k) != v]
            dirt += "" if tcp["inuse"] == 0 and tcp["tw"] == 0 else f"TCP {tcp} after reset"
            udp = stat["UDP"]["inuse"], read_sockstat(SOCKSTAT6)["UDP6"]["inuse"]
            dirt += "" if udp == (0, 0) else f" UDP, UDP6 inuse {udp} after reset"
            dirt += f" sysctls not restored: {left}" if left else ""
            conn.send(("done", WorkerReply(outcomes, not dirt, dirt, busy, executor.unsettled, rtx,
                                           executor.hashes6, executor.hashes6_problem,
                                           executor.udp_hashes6)))
        except BaseException:
            conn.send(("error", traceback.format_exc()))
            return


def unlimit_memlock() -> None:
    """This process's RLIMIT_MEMLOCK lifted, as libbpf does: before 5.11 every BPF map and
    program is charged to it (kernel/bpf/syscall.c:bpf_map_charge_init -> bpf_charge_memlock:
    -EPERM past the limit; memcg accounting replaced it in 5.11), and a guest's default of
    64 KiB refuses the hash reader's map (harness/hashprobe.py). The worker's own limit only."""
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass  # not root: the bpf() calls then say what they lack


def _run_job(executor: KernelExecutor, job: Job) -> tuple[list[Outcome], str]:
    """A scenario's outcomes, and dirt if the namespace cannot be trusted after it. A sysctl
    the kernel refuses, or a failure the executor does not catch itself (its cleanup), is that
    scenario's error (its first step's kernel value says what broke), not the run's."""
    try:
        apply_sysctls(job.sysctls)
    except sysctl.HostSysctlRefused:
        raise  # not in our namespace: the environment is wrong, not this scenario
    except Exception as e:  # the scenario cannot run as written; the defaults go back after
        return failed_job(len(job.steps), e, "@sysctl: "), ""
    try:
        return executor.run(job), ""
    except Exception as e:  # after the steps (KernelExecutor.run catches a step's own error)
        return failed_job(len(job.steps), e), f"kernel backend failed ({type(e).__name__}: {e}); "


class Worker:
    """One namespace and the process that lives in it."""

    def __init__(self, injector: str = "tun") -> None:
        self.name = namespace.new_name()
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(self.name, child, injector, os.getpid(), self.conn),
                                daemon=True)
        # Sends go through one thread, so a large scenario queued behind a running one cannot
        # deadlock against the worker's reply on the pipe.
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender = threading.Thread(target=self._send_loop, name=f"send-{self.name}", daemon=True)
        try:
            namespace.create(self.name)
            with deferred():  # a handler raising in fork's at-fork hooks (logging's) is lost
                self.proc.start()
            child.close()
            self._sender.start()
            kind, payload = self._recv(READY_TIMEOUT)
            if kind != "ready":
                raise EnvironmentProblem(f"namespace worker failed to start: {payload}")
            self.ifindex: dict[str, int] = payload
        except BaseException:
            self.stop()
            raise

    def _recv(self, timeout: float):
        if not self.conn.poll(timeout):
            raise EnvironmentProblem(f"namespace worker {self.proc.pid} did not answer in {timeout:.0f}s")
        try:
            return self.conn.recv()
        except (EOFError, OSError):  # a killed worker: EOF, or ECONNRESET on its socketpair
            raise EnvironmentProblem(f"namespace worker {self.proc.pid} died") from None

    def _send_loop(self) -> None:
        while True:
            msg = self._outbox.get()
            if msg is _STOP:
                return
            try:
                self.conn.send(msg)
            except (BrokenPipeError, OSError):
                return

    def probe(self, kind: str = "probe") -> list[Observation]:
        """Observations of the namespace's reuseport hash (a key of PROBES: TCP's by default)."""
        self._outbox.put(kind)
        kind, payload = self._recv(SCENARIO_TIMEOUT)
        if kind != "probed":
            raise EnvironmentProblem(f"hash probe failed:\n{payload}")
        return payload

    def submit(self, scenario: Scenario) -> None:
        """Start the scenario in the worker (the source lines stay here)."""
        self._outbox.put(Job.of(scenario))

    def collect(self, scenario: Scenario) -> WorkerReply:
        kind, payload = self._recv(SCENARIO_TIMEOUT)
        if kind != "done":
            raise EnvironmentProblem(f"kernel backend failed on {scenario.path}:\n{payload}")
        return payload

    def run(self, scenario: Scenario) -> WorkerReply:
        self.submit(scenario)
        return self.collect(scenario)

    def run_job(self, job: Job) -> WorkerReply:
        """A job built here rather than from a scenario (nothing may be queued)."""
        self._outbox.put(job)
        kind, payload = self._recv(SCENARIO_TIMEOUT)
        if kind != "done":
            raise EnvironmentProblem(f"kernel backend failed on a job:\n{payload}")
        return payload

    def stop(self) -> None:
        """Stop the process (ours, by PID) and remove the namespace."""
        try:
            if self.proc.pid is not None and self.proc.is_alive():
                self._outbox.put(None)  # the worker's signal to exit
                self.proc.join(2)
                if self.proc.is_alive():
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.join(2)
        finally:
            self._outbox.put(_STOP)
            if self._sender.is_alive():
                self._sender.join(2)
            self.conn.close()
            namespace.remove(self.name)


class Pool:
    """Namespaces reused across scenarios; a dirty one is replaced. Reaps stale ones at start."""

    def __init__(self, injector: str = "tun") -> None:
        self.injector = injector
        if os.geteuid() != 0:
            raise EnvironmentProblem(
                "the kernel backend needs root (network namespaces, per-socket uids); "
                "run as root, or use --backend model"
            )
        self.reaped = namespace.reap_stale()
        self.worker: Worker | None = None
        self.replaced = 0
        self.busy_seconds = 0.0  # time workers spent running steps
        self.last_seconds = 0.0  # the last scenario collected
        self.last_unsettled = False  # and whether an orphan outlived its close step
        self.last_retransmits = 0  # and how many SYN-ACKs its request timers sent again
        self.last_hashes6: dict = {}  # and the kernel's inet6_ehashfn of its IPv6 flows
        self.last_udp_hashes6: dict = {}  # and udp6_ehashfn of its IPv6 datagrams
        self.hashes6_problem = ""  # why a worker could not read them, if one could not
        self.generation = 0  # bumped with every new namespace (its own hash secret)
        self.inflight: collections.deque[Scenario] = collections.deque()
        self._secret: Calibration | None = None
        self._udp: Calibration | None = None  # udp_ehashfn's, calibrated when a scenario needs it

    def _worker(self) -> Worker:
        if self.worker is None:
            self.worker = Worker(self.injector)
            self.generation += 1
            self._secret = self._udp = None  # a new namespace has its own net_hash_mix
        return self.worker

    def calibrated(self, lport_outside: bool) -> bool:
        """Is the current namespace's secret for this formula known (hash_secret costs nothing)?"""
        return (self.worker is not None and self._secret is not None
                and self._secret.lport_outside == lport_outside)

    def hash_secret(self, lport_outside: bool) -> Calibration:
        """The current namespace's inet_ehashfn secret, calibrated once and cached."""
        if self.inflight and (self._secret is None or self._secret.lport_outside != lport_outside):
            raise RuntimeError("calibrate before queueing scenarios (the probe would queue behind them)")
        worker = self._worker()
        if self._secret is None or self._secret.lport_outside != lport_outside:
            t0 = time.monotonic()
            observations = worker.probe()
            t1 = time.monotonic()
            fits = calibrate_here_or_host(observations, lport_outside)
            self._secret = Calibration(lport_outside, fits, observations, t1 - t0,
                                       time.monotonic() - t1)
        return self._secret

    def udp_calibrated(self) -> bool:
        """Is the current namespace's udp_ehashfn secret known (udp_secret costs nothing)?"""
        return self.worker is not None and self._udp is not None

    def udp_secret(self) -> Calibration:
        """The current namespace's udp_ehashfn secret (udp_ehash_secret + net_hash_mix: the
        pre-6.15 inet_ehashfn form on every kernel), calibrated once and cached."""
        if self._udp is None and self.inflight:
            raise RuntimeError("calibrate before queueing scenarios (the probe would queue behind them)")
        worker = self._worker()
        if self._udp is None:
            t0 = time.monotonic()
            observations = worker.probe("probe-udp")
            t1 = time.monotonic()
            fits = calibrate_here_or_host(observations, False)
            self._udp = Calibration(False, fits, observations, t1 - t0, time.monotonic() - t1,
                                    "udp_ehashfn")
        return self._udp

    def submit(self, scenario: Scenario) -> None:
        """Queue a scenario on the kernel; the caller may work meanwhile, then collect() the
        scenarios in the order submitted (more than one may be in flight)."""
        self._worker().submit(scenario)
        self.inflight.append(scenario)

    def collect(self, scenario: Scenario) -> list[Outcome]:
        """The outcomes of the oldest scenario in flight. If the namespace was not clean after
        it, those queued behind it are run again in a fresh namespace."""
        assert self.worker is not None and self.inflight and self.inflight[0] is scenario
        self.inflight.popleft()
        reply = self.worker.collect(scenario)
        self.busy_seconds += reply.seconds
        self.last_seconds = reply.seconds
        self.last_unsettled = reply.unsettled
        self.last_retransmits = reply.retransmits
        self.last_hashes6 = reply.hashes6 or {}
        self.last_udp_hashes6 = reply.udp_hashes6 or {}
        self.hashes6_problem = self.hashes6_problem or reply.hashes6_problem  # the first, said once
        if not reply.clean:
            behind = list(self.inflight)
            for queued in behind:  # ran after the dirt: their results do not count
                self.worker.collect(queued)
            self.inflight.clear()
            self.worker.stop()
            self.worker = None
            self.replaced += 1
            variant = self._secret.lport_outside if self._secret else None
            # the new namespace's secret before anything is queued, if what is queued needs it;
            # else when a scenario that does comes (Runner.run holds it back until the pool is
            # idle): a kernel that cannot destroy TIME_WAIT sockets (5.10) replaces its
            # namespace after every such scenario, and none of those needs a hash
            if variant is not None and any(q.hashes_matter for q in behind):
                self.hash_secret(variant)
            if any(q.udp_hashes_matter for q in behind):
                self.udp_secret()
            for queued in behind:
                self.submit(queued)
        return reply.outcomes

    def run(self, scenario: Scenario) -> list[Outcome]:
        self.submit(scenario)
        return self.collect(scenario)

    def read_hashes(self, flows: tuple[Flow, ...]) -> dict:
        """The kernel's reuseport hash of each flow in the current namespace, by (laddr, lport,
        faddr, fport), on wildcard and exact-address listeners (harness/hashprobe.py)."""
        if self.inflight:
            raise RuntimeError("read hashes before queueing scenarios")
        return self._worker().run_job(Job((), 0, (), False, flows)).hashes6 or {}

    def discard_inflight(self) -> None:
        """Collect and drop what is still queued (after the caller failed midway)."""
        while self.inflight:
            self.collect(self.inflight[0])

    def close(self) -> None:
        """Stop the worker and remove our namespaces; SIGINT/SIGTERM wait until this is done."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            if self.worker is not None:
                w, self.worker = self.worker, None
                w.stop()
            namespace.remove_owned()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
