"""The kernel side: real sockets for each step, inside a worker that sits in the namespace.

I/O only, no semantics: every value reported is what a system call returned, what came back
from the TUN, or which listener's accept queue held a connection.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import ipaddress
import os
import select
import socket
import struct
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import bpf, ebpf_progs, lifetime
from harness import steps as verbs
from harness.compare import HARNESS_ERROR
from harness.hashprobe import HashKey, HashRecorder
from harness.inject import (
    ANSWERED,
    DROP,
    RST_KIND,
    SYNACK,
    SYNACK_ACKED,
    Flow,
    RepliesLost,
    Result,
    TunInjector,
    pin_to_cpu,
)
from harness.inject_udp import Datagram, datagram_key, port_unreachable_key
from harness.scenario import Scenario
from harness.steps import Executor, Step
from model.cbpf import Program
from model.ebpf import EbpfProgram
from model.outcome import Outcome
from model.sysctl import proc_text
from netns import sysctl
from netns.counters import SOCKSTAT, SOCKSTAT6, read_sockstat
from netns.diag import (
    TCPF_LISTEN,
    TCPF_SYN_RECV,
    Conn,
    DiagUnavailable,
    destroy_timewait,
    still_closing,
    tcp_sockets,
)

SO_INCOMING_CPU = 49
SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
IP_FREEBIND = 15  # include/uapi/linux/in.h
IP_BIND_ADDRESS_NO_PORT = 24
IP_LOCAL_PORT_RANGE = 51
LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0}: close() sends RST, no TIME_WAIT
# SO_SNDTIMEO for connect(): loopback answers at once; a SYN the model says is dropped (a full
# accept queue) ends the blocking connect with EINPROGRESS after this long
CONNECT_TIMEOUT = struct.pack("ll", 1, 0)
REPLY_OUTCOMES = {RST_KIND: Outcome("RST"), DROP: Outcome("DROP")}
NO_CHILD = Outcome("NO_CHILD")  # the handshake completed, yet no listener held the connection
NOT_RUN = Outcome("NOT_RUN")  # a step after a harness error: the kernel side did not run it


def harness_error(e: BaseException, where: str = "") -> Outcome:
    """The outcome of a step the kernel backend failed to run (a harness bug, never a kernel
    answer): it names the exception and the harness line it came from, and the scenario's
    report shows it as that step's kernel value, so one bad step costs one scenario, not the run."""
    frames = traceback.extract_tb(e.__traceback__)
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return Outcome(f"{HARNESS_ERROR}({where}{type(e).__name__}: {str(e)[:160]}{at})")


def failed_job(steps: int, e: BaseException, where: str = "") -> list[Outcome]:
    """Outcomes of a scenario the harness could not run at all: the error, then NOT_RUN."""
    return [harness_error(e, where)] + [NOT_RUN] * (steps - 1)


_death_parent: int | None = None  # the parent a worker dies with (die_with_parent), if any


def die_with_parent(parent: int) -> None:
    """lifetime.die_with_parent, remembered: effective_uid arms it again after each uid change,
    which clears it."""
    global _death_parent
    _death_parent = parent
    lifetime.die_with_parent(parent)


@contextlib.contextmanager
def effective_uid(uid: int) -> Iterator[None]:
    """Run a call as `uid` (socket() takes the inode uid from it; bind checks capabilities).
    Both seteuid() calls clear PR_SET_PDEATHSIG: a worker re-arms it after the change back (a
    parent that died meanwhile ends the worker there)."""
    if uid == 0:
        yield
        return
    try:
        os.seteuid(uid)
        try:
            yield
        finally:
            os.seteuid(0)
    finally:
        if _death_parent is not None:
            die_with_parent(_death_parent)


def _errno_outcome(e: OSError) -> Outcome:
    return Outcome(errno.errorcode.get(e.errno or 0, str(e.errno)))


def _status(fn, *args) -> Outcome:
    """A call's status: "0", or its errno's name."""
    try:
        fn(*args)
    except OSError as e:
        return _errno_outcome(e)
    return Outcome("0")


_libc = ctypes.CDLL(None, use_errno=True)


def raw_listen(fd: int, backlog: int) -> None:
    """listen(2) with the backlog as given: Python's listen() turns a negative one into 0, and
    the kernel's clamp of it (__sys_listen_socket: (unsigned int)backlog > somaxconn) is what
    a scenario may ask about."""
    if _libc.listen(fd, ctypes.c_int(backlog)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def raw_bind(fd: int, data: bytes, length: int) -> None:
    """bind(2) with these bytes and this length (Python's bind() builds only valid ones)."""
    buf = ctypes.create_string_buffer(data, max(len(data), 1))
    if _libc.bind(fd, buf, ctypes.c_int(length)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def settle_orphans(closed: list[Conn], timeout: float = 1.0) -> bool:
    """Wait until none of the `closed` connections is an orphan (closed by its owner, still
    finishing its close: FIN_WAIT1, FIN_WAIT2, LAST_ACK); those that finished leave the list.
    On loopback that takes a few milliseconds, the peer's delayed ACK of the FIN; the model
    shows the settled state (TIME_WAIT) at once.
    False if one is left: when that ACK arrives while close() still owns the socket, the
    orphan stays a full FIN_WAIT2 socket for tcp_fin_timeout (tcp_input.c:
    tcp_rcv_state_process, TCP_FIN_WAIT1: sock_owned_by_user -> keepalive timer, not
    tcp_time_wait), a race a slow (emulated) close() can lose.
    sockstat's orphan count is the host's, not the namespace's (net/ipv4/proc.c:
    sockstat_seq_show prints tcp_orphan_count_sum(), one counter for all namespaces): zero
    there ends the wait at once, but trusting it alone made every close step wait its whole
    timeout, and call itself unsettled, on any host with an orphan of its own (a busy server,
    a namespace removed with connections open), so the connections are looked up one by one."""
    deadline = time.monotonic() + timeout
    while closed and read_sockstat()["TCP"]["orphan"]:
        closed[:] = still_closing(closed)
        if not closed:
            break
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0005)
    closed.clear()
    return True


def _connection(s: socket.socket) -> Conn | None:
    """The socket's connection, if it has one (only a connection can be left an orphan)."""
    try:
        return Conn(s.family, s.getsockname()[:2], s.getpeername()[:2])
    except OSError:  # ENOTCONN: a listener, or never connected, or reset
        return None


def request_sockets() -> set[tuple[tuple[str, int], tuple[str, int]]]:
    """(client, server) of every request socket in the namespace (dumped as SYN_RECV)."""
    return {(peer_key(m.dst, m.dport), peer_key(m.src, m.sport)) for m in tcp_sockets(TCPF_SYN_RECV)}


def listener_queues() -> dict[int, int]:
    """Accept-queue length of every listener in the namespace, by inode (idiag_rqueue)."""
    return {m.inode: m.rqueue for m in tcp_sockets(TCPF_LISTEN)}


# datagrams written before their receivers are read: one member's queue (net.core.rmem_default,
# 208 KiB; a small datagram's skb takes about 1 KiB of it) must hold a whole batch
DGRAM_BATCH = 64


def flow_of(step: verbs.FlowStep) -> Flow:
    """A flow step as the injector's Flow."""
    return Flow(step.src.text, step.src.port, step.dst.text, step.dst.port, step.payload)


def wire_of(step: verbs.FlowStep) -> Flow | Datagram:
    """A batched step as it travels to the worker: a SYN's Flow, a datagram's Datagram (tuples
    that pickle in a fraction of a step's time; the worker tells the batches apart by type)."""
    if isinstance(step, verbs.DgramStep):
        return Datagram(step.src.text, step.src.port, step.dst.text, step.dst.port, step.payload)
    return flow_of(step)


def attach_cbpf(s: socket.socket, prog: Program) -> None:
    """setsockopt(SO_ATTACH_REUSEPORT_CBPF) with a struct sock_fprog pointing at the filter."""
    code = prog.filter_bytes()
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HxxxxxxQ", len(code) // 8, ctypes.addressof(buf))
    s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


def peer_key(host: str, port: int) -> tuple[str, int]:
    """A peer as (address, port) with v4-mapped addresses (a dual-stack listener's IPv4
    children) written as IPv4, and IPv6 in its compressed form."""
    if ":" not in host:
        return host, port
    ip = ipaddress.IPv6Address(host.split("%")[0])
    return str(ip.ipv4_mapped or ip), port


@dataclass(frozen=True)
class Job:
    """A scenario as the worker needs it: steps of a batched verb travel as injector tuples
    (wire_of: Flows of SYNs, Datagrams; cheap to pickle, ready to inject), everything else
    as the step itself."""

    sysctls: tuple[tuple[str, str], ...]
    cpu: int
    steps: tuple[Step | Flow | Datagram, ...]
    injects: bool = True  # has injected steps: listeners get SO_LINGER {1, 0} for the sweep
    hash_flows: tuple[Flow, ...] = ()  # IPv6 flows whose reuseport hash to read after the steps
    udp_hash_flows: tuple[Flow, ...] = ()  # IPv6 datagrams whose udp6_ehashfn to read likewise

    @classmethod
    def of(cls, scenario: Scenario) -> Job:
        steps = tuple(wire_of(s) if s.VERB.batched else s for s in scenario.steps)
        injects = any(s.VERB.injected for s in scenario.steps)
        # the values the model read, as text the kernel's handlers read the same way
        sysctls = tuple((key, proc_text(key, value)) for key, value in scenario.sysctls)
        hash_flows: tuple[Flow, ...] = ()
        if scenario.hashes_matter:  # inet6_ehashfn is not computable: read it (hashprobe)
            hash_flows = tuple(dict.fromkeys(
                flow_of(s) for s in scenario.steps
                if isinstance(s, verbs.FlowStep) and s.VERB.picks_listener and s.dst.family == socket.AF_INET6))
        udp_hash_flows: tuple[Flow, ...] = ()
        if scenario.udp_hashes6_matter:  # udp6_ehashfn is not computable either
            udp_hash_flows = tuple(dict.fromkeys(
                flow_of(s) for s in scenario.steps
                if isinstance(s, verbs.FlowStep) and s.VERB.picks_receiver and s.dst.family == socket.AF_INET6))
        return cls(sysctls, scenario.cpu, steps, injects, hash_flows, udp_hash_flows)


class KernelExecutor(Executor):
    """Runs one scenario's steps on real sockets in the current namespace. A batched verb's
    method (do_syn) takes the run of consecutive Flows its steps travel as."""

    def __init__(self, tun_fds: dict[str, int], injector: type[TunInjector] = TunInjector) -> None:
        self.socks: dict[str, socket.socket] = {}
        self.uids: dict[str, int] = {}
        self.injector = injector(tun_fds)
        self.pending: dict[tuple[str, int], tuple[int, Result]] = {}  # peer -> (step index, handshake)
        self.outcomes: list[Outcome | None] = []  # None: a handshake whose child is not swept yet
        self.linger = True
        self.unsettled = False
        self.closed: list[Conn] = []  # connections closed in this scenario, until they settle
        self.clients: dict[tuple, str] = {}  # a connect()ed socket's (local, remote) -> name
        self.half_open: dict[tuple[str, int, str, int], Result] = {}  # syn_only flows
        self._recorder: HashRecorder | None = None
        self.maps: dict[str, int] = {}  # sockarray() fds by name
        self.progs: dict[tuple[str, int], int] = {}  # loaded eBPF programs by (shape, map fd)
        self.hashes6: dict[HashKey, int] = {}  # the last job's, read after its steps
        self.udp_hashes6: dict[HashKey, int] = {}  # and its datagrams' udp6_ehashfn
        self.hashes6_problem = ""  # why the reader cannot read them here ("" when it can)

    def run(self, job: Job) -> list[Outcome]:
        pin_to_cpu(job.cpu)
        self.outcomes = []
        self.unsettled = False  # an orphan outlived settle_orphans after a close step
        self.linger = job.injects
        self.clients.clear()
        steps = job.steps
        try:
            i = 0
            while i < len(steps):
                try:
                    if isinstance(steps[i], Flow):  # a run of SYNs is one injector batch
                        j = i
                        while j < len(steps) and isinstance(steps[j], Flow):
                            j += 1
                        self.do_syn(steps[i:j])
                        i = j
                        continue
                    if isinstance(steps[i], Datagram):  # so is a run of datagrams
                        j, seen = i, set()
                        while (j < len(steps) and isinstance(steps[j], Datagram)
                               and (key := (steps[j].src, steps[j].sport)) not in seen
                               and len(seen) < DGRAM_BATCH):  # a client once per batch: its
                            # datagram's receiver is found by its address and port
                            seen.add(key)
                            j += 1
                        self.outcomes.extend(self.dgrams(steps[i:j]))
                        i = j
                        continue
                    if not steps[i].VERB.keeps_queues:
                        self.sweep()
                    self.outcomes.append(self.step(steps[i]))
                    i += 1
                except Exception as e:  # a harness bug: this step's error; the rest not run
                    del self.outcomes[i:]
                    self.pending = {k: v for k, v in self.pending.items() if v[0] < i}
                    self.outcomes.append(harness_error(e))
                    self.outcomes.extend([NOT_RUN] * (len(steps) - i - 1))
                    break
            try:
                self.sweep()
            except Exception as e:  # the handshakes whose listener the sweep would have named
                self.outcomes = [harness_error(e, "sweep: ") if o is None else o for o in self.outcomes]
            return [o or NO_CHILD for o in self.outcomes]
        finally:
            self.close_all()
            self.hashes6 = self.read_hashes(job.hash_flows) if job.hash_flows else {}
            self.udp_hashes6 = self.read_hashes(job.udp_hash_flows, udp=True) if job.udp_hash_flows else {}

    def read_hashes(self, flows: Sequence[Flow], udp: bool = False) -> dict[HashKey, int]:
        """The kernel's reuseport hash of each flow (a SYN's, or with `udp` a datagram's), once
        the scenario's sockets are gone (harness/hashprobe.py); those it could not read are
        left out."""
        if self._recorder is None:
            self._recorder = HashRecorder()
            self.hashes6_problem = self._recorder.problem
        try:
            return self._recorder.measure(self.injector, flows, udp)
        except (OSError, RepliesLost) as e:  # the picks stay checked by property; the outcomes stand
            self.hashes6_problem = f"reading the kernel's hashes failed: {e}"
            self.injector.drain()
            return {}

    def close_all(self) -> None:
        """End the scenario: every socket closed; connections are aborted (SO_LINGER {1, 0})
        and the TIME_WAIT sockets the scenario made are destroyed, so the namespace is clean;
        handshakes left open are reset (their request sockets go)."""
        self.injector.reset(list(self.half_open.values()))
        self.half_open.clear()
        for s in self.socks.values():
            if not self.linger and s.fileno() >= 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
            s.close()
        if not self.linger:
            settle_orphans(self.closed)
            try:
                destroy_timewait()
            except DiagUnavailable:
                # SOCK_DESTROY of TIME_WAIT sockets is 6.1+ (tcp.c:tcp_abort; 5.10 answers
                # EOPNOTSUPP for any !sk_fullsock but a request): the worker then finds
                # the namespace not clean and the pool replaces it.
                pass
        self.socks.clear()
        for fd in [*self.progs.values(), *self.maps.values()]:
            os.close(fd)
        self.progs.clear()
        self.maps.clear()
        self.closed.clear()
        self.pending.clear()
        self.injector.drain()

    def step(self, step: Step) -> Outcome:
        return self.handler(step)(step)

    def _call(self, name: str, fn, *args) -> Outcome:
        with effective_uid(self.uids[name]):
            return _status(fn, *args)

    # -- connections ---------------------------------------------------------------------

    def do_syn(self, flows: Sequence[Flow]) -> None:
        """Handshakes for consecutive syn steps, in one injector batch."""
        for flow, result in zip(flows, self.injector.handshake(flows), strict=True):
            if result.kind == SYNACK_ACKED:
                self.pending[(flow.src, flow.sport)] = (len(self.outcomes), result)
                self.outcomes.append(None)  # the listener's name, at the sweep
            else:
                self.outcomes.append(REPLY_OUTCOMES.get(result.kind) or Outcome(result.kind))

    def sweep(self) -> None:
        """accept() every queued child on every socket and note its listener, closing each child
        as it comes: they inherited SO_LINGER {1, 0} from their listener (set in do_listen), so
        close() aborts them with a RST (no FIN, no TIME_WAIT, nothing left to count)."""
        if not self.pending:
            return
        for name, peers in self.accept_all().items():
            for peer in peers:
                hit = self.pending.pop(peer, None)
                if hit is not None:
                    self.outcomes[hit[0]] = self._listener_outcome(name)
        self.pending.clear()  # any left: handshake completed but no child (stays NO_CHILD)
        self.injector.drain()

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - a few names per executor
    def _listener_outcome(self, name: str) -> Outcome:
        return Outcome(name, choice=name)

    def accept_all(self) -> dict[str, list[tuple[str, int]]]:
        """Every queued child's peer by listener name (raw accept, each child closed at once:
        a queue longer than RLIMIT_NOFILE, 1024 in a guest, must not end in EMFILE)."""
        found: dict[str, list[tuple[str, int]]] = {}
        for name, s in self.socks.items():
            if s.fileno() < 0:
                continue
            s.setblocking(False)
            try:
                while True:
                    fd, addr = s._accept()
                    os.close(fd)
                    found.setdefault(name, []).append(peer_key(addr[0], addr[1]))
            except BlockingIOError:
                pass  # EAGAIN: drained
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: not listening; anything else is a harness error
                    raise
            finally:
                s.setblocking(True)
        return found

    def do_dgram(self, step: verbs.DgramStep) -> Outcome:
        return self.dgrams([wire_of(step)])[0]  # type: ignore[list-item]

    def dgrams(self, flows: Sequence[Datagram]) -> list[Outcome]:
        """Consecutive datagrams of distinct tuples, written in one exchange (a datagram changes
        no socket, so none decides another's receiver); each one's receiver is found by reading
        every UDP socket of the scenario once (the kernel queued them before write() returned),
        else ICMP if a port unreachable came back, else DROP."""
        build = self.injector.datagram_bytes
        sent = self.injector.exchange([(f, datagram_key(f), build(f)) for f in flows], port_unreachable_key)
        got = self._receivers()
        out = []
        for f, r in zip(flows, sent, strict=True):
            names = got.get(peer_key(f.src, f.sport), [])
            if len(names) == 1:
                out.append(Outcome(names[0], choice=names[0]))
            elif names:
                out.append(Outcome(f"AMBIGUOUS({','.join(sorted(names))})"))
            else:
                out.append(Outcome("ICMP" if r.kind == ANSWERED else "DROP"))
        return out

    def _receivers(self) -> dict[tuple[str, int], list[str]]:
        """Every queued datagram read off every UDP socket: the sockets each peer's reached
        (one poll() finds the sockets holding any: a group of 256 gets a few of a batch)."""
        got: dict[tuple[str, int], list[str]] = {}
        udp = {s.fileno(): (name, s) for name, s in self.socks.items()
               if s.fileno() >= 0 and s.type == socket.SOCK_DGRAM}
        poller = select.poll()
        for fd in udp:
            poller.register(fd, select.POLLIN | select.POLLERR)
        for fd, _ in poller.poll(0):
            name, s = udp[fd]
            errors = 0
            while True:
                try:
                    _, addr = s.recvfrom(1 << 16, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                except OSError:  # sk_err (an ICMP error it was sent) is reported once, then read on
                    errors += 1
                    if errors > 8:
                        break
                    continue
                names = got.setdefault(peer_key(addr[0], addr[1]), [])
                if name not in names:
                    names.append(name)
        return got

    def do_syn_only(self, step: verbs.SynOnlyStep) -> Outcome:
        """A SYN only. A SYN-ACK is a cookie when no request socket holds the flow: sock_diag
        lists request sockets (as SYN_RECV), and a cookie SYN-ACK leaves none
        (tcp_conn_request: inet_reqsk_alloc(..., !want_cookie) is never hashed)."""
        flow = flow_of(step)
        # the kernel answers a SYN inside write(); the wait only bounds a missing answer
        result = self.injector.syn_only([flow], wait=0.05)[0]
        key = (flow.src, flow.sport, flow.dst, flow.dport)
        self.half_open[key] = result
        if result.kind != SYNACK:
            return REPLY_OUTCOMES.get(result.kind) or Outcome(result.kind)
        held = (peer_key(flow.src, flow.sport), peer_key(flow.dst, flow.dport))
        return Outcome("SYNACK" if held in request_sockets() else "COOKIE")

    def do_ack(self, step: verbs.AckStep) -> Outcome:
        """The ACK of a syn_only flow (none if no SYN-ACK came): RST if the kernel resets it at
        once; otherwise the listener whose queue gets the child, found by the sweep or an
        accept(), or DROP when none does."""
        key = (step.src.text, step.src.port, step.dst.text, step.dst.port)
        result = self.half_open.get(key)
        if result is None or result.server_isn is None:
            return Outcome("DROP")
        before = listener_queues()
        if self.injector.ack(result) == RST_KIND:
            del self.half_open[key]
            return Outcome("RST")
        # the child (if any) is queued before write() returns: the listener whose accept queue
        # grew by one got it
        after = listener_queues()
        grown = {ino for ino, n in after.items() if n > before.get(ino, 0)}
        names = [name for name, s in self.socks.items()
                 if s.fileno() >= 0 and os.fstat(s.fileno()).st_ino in grown]
        if len(names) == 1:
            del self.half_open[key]
            return self._listener_outcome(names[0])
        return Outcome("DROP" if not grown else f"AMBIGUOUS({','.join(sorted(names))})")

    def do_queue(self, step: verbs.QueueStep) -> Outcome:
        s = self.socks[step.sock]
        if s.fileno() < 0:
            return Outcome("EBADF")
        return Outcome(str(listener_queues().get(os.fstat(s.fileno()).st_ino, 0)))

    def do_inuse(self, step: verbs.InuseStep) -> Outcome:
        key = step.counter.upper()  # sockstat's line: TCP, UDP; sockstat6's: TCP6, UDP6
        return Outcome(str(read_sockstat(SOCKSTAT6 if step.family == socket.AF_INET6 else SOCKSTAT)[key]["inuse"]))

    # -- system calls --------------------------------------------------------------------

    def do_socket(self, step: verbs.SocketStep) -> Outcome:
        old = self.socks.pop(step.name, None)
        if old is not None:
            old.close()
        with effective_uid(step.uid):
            try:
                s = socket.socket(step.family, getattr(socket, step.proto.value))
            except OSError as e:
                return _errno_outcome(e)
        self.socks[step.name] = s
        self.uids[step.name] = step.uid
        return Outcome("0")

    def do_setsockopt(self, step: verbs.SetsockoptStep) -> Outcome:
        s = self.socks[step.sock]
        level_name, opt_name, kind = step.option.value
        level = getattr(socket, level_name)
        if kind == "program":
            assert isinstance(step.value, Program)
            return self._call(step.sock, attach_cbpf, s, step.value)
        if kind == "ebpf":
            assert isinstance(step.value, EbpfProgram)
            try:
                prog_fd = self._load(step.value)
            except OSError as e:  # BPF_PROG_LOAD refused it: that is the step's errno
                return _errno_outcome(e)
            return self._call(step.sock, s.setsockopt, socket.SOL_SOCKET, bpf.SO_ATTACH_REUSEPORT_EBPF, prog_fd)
        if kind == "device":
            return self._call(step.sock, s.setsockopt, level, socket.SO_BINDTODEVICE,
                              str(step.value).encode())
        opt = {"SO_INCOMING_CPU": SO_INCOMING_CPU, "SO_DETACH_REUSEPORT_BPF": SO_DETACH_REUSEPORT_BPF,
               "IP_FREEBIND": IP_FREEBIND, "IP_BIND_ADDRESS_NO_PORT": IP_BIND_ADDRESS_NO_PORT,
               "IP_LOCAL_PORT_RANGE": IP_LOCAL_PORT_RANGE}.get(opt_name)
        if opt is None:
            opt = getattr(socket, opt_name)
        if kind == "portrange":  # a u32 (hi << 16 | lo) that may not fit a C int
            return self._call(step.sock, s.setsockopt, level, opt, struct.pack("=I", step.value))
        return self._call(step.sock, s.setsockopt, level, opt, step.value)

    def _load(self, prog: EbpfProgram) -> int:
        """The program's fd, loaded against its map (-1 if that map's creation failed: the
        kernel then refuses the program), once per shape and map per scenario."""
        map_fd = self.maps.get(prog.map_name, -1) if prog.map_name else -1
        key = (prog.text, map_fd)
        if key not in self.progs:
            self.progs[key] = bpf.prog_load(bpf.PROG_TYPE_SK_REUSEPORT, ebpf_progs.instructions(prog, map_fd),
                                            ebpf_progs.attach_type(prog))
        return self.progs[key]

    def do_sockarray(self, step: verbs.SockarrayStep) -> Outcome:
        def create() -> None:
            self.maps[step.map] = bpf.map_create(bpf.MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, step.entries)

        return _status(create)

    def do_map_update(self, step: verbs.MapUpdateStep) -> Outcome:
        fd = self.socks[step.sock].fileno()
        if fd < 0:  # closed: a descriptor no process holds, as the model's EBADF says
            fd = (1 << 31) - 1
        return _status(bpf.map_update, self.maps.get(step.map, -1), struct.pack("=I", step.key),
                       struct.pack("=Q", fd))

    def do_map_delete(self, step: verbs.MapDeleteStep) -> Outcome:
        return _status(bpf.map_delete, self.maps.get(step.map, -1), struct.pack("=I", step.key))

    def _port(self, s: socket.socket) -> int | None:
        try:
            return s.getsockname()[1]
        except OSError:
            return None

    def do_bind(self, step: verbs.BindStep) -> Outcome:
        # A closed Python socket has fd -1: the call still reaches the kernel, which says EBADF.
        s = self.socks[step.sock]
        if step.raw is not None:
            out = self._call(step.sock, raw_bind, s.fileno(), step.raw.data, step.raw.length)
        else:
            out = self._call(step.sock, s.bind, step.addr.sockaddr)
        if out.value == "0" and step.addr.port == 0 and self._port(s):
            return Outcome("0", choice=self._port(s))  # the ephemeral port the kernel picked
        if out.value == "EADDRINUSE" and step.addr.port == 0:
            return Outcome(out.value, choice=0)  # the port search found none
        return out

    def do_listen(self, step: verbs.ListenStep) -> Outcome:
        s = self.socks[step.sock]
        out = self._call(step.sock, raw_listen, s.fileno(), step.backlog)
        if out.value == "0" and self.linger:
            # the harness's teardown: children copy the listener's sk_flags and sk_lingertime
            # (sk_clone_lock), so their close() is an abort. A listener's own close() never
            # reads SO_LINGER (tcp_close takes the TCP_LISTEN branch first).
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        # the port now (getsockname's inet_sport can be stale, so "was 0" is no test for a search)
        if out.value == "0":
            return Outcome("0", choice=self._port(s))
        if out.value == "EADDRINUSE":
            return Outcome(out.value, choice=0)  # a port search, if any, found none
        return out

    def do_close(self, step: verbs.CloseStep) -> Outcome:
        s = self.socks[step.sock]
        fd = s.fileno()
        if fd < 0:
            try:
                os.close(fd)  # the descriptor is gone: let the kernel answer (EBADF)
            except OSError as e:
                return _errno_outcome(e)
            return Outcome("0")
        if not self.linger and (conn := _connection(s)) is not None:
            self.closed.append(conn)  # only these closes are waited for (an abort leaves no orphan)
        s.close()
        if not self.linger and not settle_orphans(self.closed):
            self.unsettled = True
        return Outcome("0")

    def do_connect(self, step: verbs.ConnectStep) -> Outcome:
        s = self.socks[step.sock]
        if s.fileno() >= 0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, CONNECT_TIMEOUT)
        out = self._call(step.sock, s.connect, step.addr.sockaddr)
        after = self._port(s) if s.fileno() >= 0 else None
        if out.value == "0":
            local, remote = s.getsockname(), s.getpeername()
            self.clients[(peer_key(*local[:2]), peer_key(*remote[:2]))] = step.sock
        if out.value == "EADDRNOTAVAIL":
            return Outcome(out.value, choice=0)  # a port search, if any, found none
        if after:  # the port the connection used (still inet_sport after a refusal)
            return Outcome(out.value, choice=after)
        return out

    def do_accept(self, step: verbs.AcceptStep) -> Outcome:
        """A non-blocking accept(); the value is the name of the socket that connected."""
        s = self.socks[step.sock]
        old = self.socks.pop(step.name, None)
        if old is not None:
            old.close()
        with effective_uid(self.uids[step.sock]):
            try:
                s.setblocking(False)
                child, addr = s.accept()
            except OSError as e:
                placeholder = socket.socket(s.family)
                placeholder.close()  # the name exists, every use of it is EBADF
                self.socks[step.name] = placeholder
                self.uids[step.name] = self.uids[step.sock]
                return _errno_outcome(e)
            finally:
                if s.fileno() >= 0:
                    s.setblocking(True)
        child.setblocking(True)
        self.socks[step.name] = child
        self.uids[step.name] = self.uids[step.sock]
        peer = peer_key(addr[0], addr[1])
        hit = self.pending.pop(peer, None)
        if hit is not None:  # an injected handshake's child: its step learns the listener now
            self.outcomes[hit[0]] = self._listener_outcome(step.sock)
        name = self.clients.get((peer, peer_key(*child.getsockname()[:2])))
        if name is None:  # an injected client: its address
            name = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        return Outcome(name)

    def do_shutdown(self, step: verbs.ShutdownStep) -> Outcome:
        s = self.socks[step.sock]
        return self._call(step.sock, s.shutdown, socket.SHUT_RDWR)

    def do_tw(self, step: verbs.TwStep) -> Outcome:
        return Outcome(str(read_sockstat()["TCP"]["tw"]))

    def do_getsockname(self, step: verbs.GetsocknameStep) -> Outcome:
        s = self.socks[step.sock]
        try:
            name = s.getsockname()
        except OSError as e:
            return _errno_outcome(e)
        if s.family == socket.AF_INET6:
            return Outcome(f"[{name[0]}]:{name[1]}")
        return Outcome(f"{name[0]}:{name[1]}")


def apply_sysctls(settings: tuple[tuple[str, str], ...]) -> None:
    """A scenario's settings, in its order (the model checked them in that order)."""
    for key, value in settings:
        sysctl.write(key, value)


def restore_sysctls(settings: tuple[tuple[str, str], ...]) -> None:
    """Write back a namespace's defaults whatever a scenario left. A write the kernel refuses
    for now is retried after the others: net/ipv4/sysctl_net_ipv4.c ipv4_local_port_range and
    ipv4_privileged_ports each check the other's current value. What still fails is left for
    the caller's check (a sysctl not restored: the namespace is replaced)."""
    pending = list(settings)
    for _ in range(2):
        failed = []
        for key, value in pending:
            try:
                sysctl.write(key, value)
            except OSError:
                failed.append((key, value))
        if not failed:
            return
        pending = failed
