"""The kernel side: real sockets for each step, inside a worker that sits in the namespace.

I/O only, no semantics: every value reported is what a system call returned.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator

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
from model.outcome import Outcome
from netns import sysctl


@contextlib.contextmanager
def effective_uid(uid: int) -> Iterator[None]:
    """Run a call as `uid` (socket() takes the inode uid from it; bind checks capabilities)."""
    if uid == 0:
        yield
        return
    os.seteuid(uid)
    try:
        yield
    finally:
        os.seteuid(0)


def _errno_outcome(e: OSError) -> Outcome:
    return Outcome(errno.errorcode.get(e.errno or 0, str(e.errno)))


def read_sockstat() -> dict[str, dict[str, int]]:
    """/proc/net/sockstat of this thread's namespace, parsed by key ('TCP' -> {'inuse': 1})."""
    out: dict[str, dict[str, int]] = {}
    with open("/proc/thread-self/net/sockstat") as f:
        for line in f:
            proto, _, rest = line.partition(":")
            words = rest.split()
            out[proto.strip()] = {words[i]: int(words[i + 1]) for i in range(0, len(words) - 1, 2)}
    return out


class KernelExecutor:
    """Runs one scenario's steps on real sockets in the current namespace."""

    def __init__(self) -> None:
        self.socks: dict[str, socket.socket] = {}
        self.uids: dict[str, int] = {}

    def run(self, scenario: Scenario) -> list[Outcome]:
        try:
            return [self.step(s) for s in scenario.steps]
        finally:
            self.close_all()

    def close_all(self) -> None:
        for s in self.socks.values():
            s.close()
        self.socks.clear()

    def step(self, step: Step) -> Outcome:
        return getattr(self, "do_" + step.verb)(step)

    def _call(self, name: str, fn, *args) -> Outcome:
        with effective_uid(self.uids[name]):
            try:
                fn(*args)
            except OSError as e:
                return _errno_outcome(e)
        return Outcome("0")

    def do_socket(self, step: SocketStep) -> Outcome:
        old = self.socks.pop(step.name, None)
        if old is not None:
            old.close()
        with effective_uid(step.uid):
            try:
                s = socket.socket(step.family, socket.SOCK_STREAM)
            except OSError as e:
                return _errno_outcome(e)
        self.socks[step.name] = s
        self.uids[step.name] = step.uid
        return Outcome("0")

    def do_setsockopt(self, step: SetsockoptStep) -> Outcome:
        s = self.socks[step.sock]
        level, opt = (getattr(socket, n) for n in step.option.value)
        return self._call(step.sock, s.setsockopt, level, opt, step.value)

    def _port(self, s: socket.socket) -> int | None:
        try:
            return s.getsockname()[1]
        except OSError:
            return None

    def do_bind(self, step: BindStep) -> Outcome:
        # A closed Python socket has fd -1: the call still reaches the kernel, which says EBADF.
        s = self.socks[step.sock]
        out = self._call(step.sock, s.bind, step.addr.sockaddr)
        if out.value == "0" and step.addr.port == 0:
            return Outcome("0", choice=self._port(s))
        return out

    def do_listen(self, step: ListenStep) -> Outcome:
        s = self.socks[step.sock]
        before = self._port(s) if s.fileno() >= 0 else None
        out = self._call(step.sock, s.listen, step.backlog)
        if out.value == "0" and before == 0:
            return Outcome("0", choice=self._port(s))
        return out

    def do_close(self, step: CloseStep) -> Outcome:
        s = self.socks[step.sock]
        fd = s.fileno()
        if fd < 0:
            try:
                os.close(fd)  # the descriptor is gone: let the kernel answer (EBADF)
            except OSError as e:
                return _errno_outcome(e)
            return Outcome("0")
        s.close()
        return Outcome("0")

    def do_getsockname(self, step: GetsocknameStep) -> Outcome:
        s = self.socks[step.sock]
        try:
            host, port = s.getsockname()[:2]
        except OSError as e:
            return _errno_outcome(e)
        return Outcome(f"{host}:{port}")

    def do_inuse(self, step: InuseStep) -> Outcome:
        return Outcome(str(read_sockstat()["TCP"]["inuse"]))


def apply_sysctls(settings: tuple[tuple[str, str], ...]) -> None:
    for key, value in settings:
        sysctl.write(key, value)
