"""One way every command ends on Ctrl-C and SIGTERM: the `with Pool()` blocks unwind (workers
and namespaces removed), one line is printed, and the exit status is 128 + the signal."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from harness.environment import EnvironmentProblem

_DEFERRED = {signal.SIGINT, signal.SIGTERM}


class Terminated(SystemExit):
    """SIGTERM, as an exit that unwinds like Ctrl-C does (and says so in one line)."""


_received: list[int] = []  # signals whose handler ran, whether or not the exception got through


def _on_sigterm(signum, frame) -> None:
    _received.append(signum)
    raise Terminated(128 + signum)


def _on_sigint(signum, frame) -> None:
    _received.append(signum)
    raise KeyboardInterrupt


def run_interruptible(prog: str, body: Callable[[], int]) -> int:
    """body()'s status; SIGTERM unwinds as SystemExit(143), Ctrl-C as 130, no traceback. An
    exception raised by a handler can be swallowed where Python ignores exceptions (a ctypes
    callback, __del__, logging's lock release): a signal received is still the exit status."""
    _received.clear()
    before = {s: signal.signal(s, h) for s, h in ((signal.SIGTERM, _on_sigterm), (signal.SIGINT, _on_sigint))}
    try:
        status = body()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; namespaces and workers removed", file=sys.stderr)
        return 128 + signal.SIGINT
    except Terminated:
        print(f"{prog}: terminated; namespaces and workers removed", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        # the work is done and nothing of ours is left to remove: the handlers from before come
        # back (a program's: harness/_startup.py, which exits at once), so a signal while the
        # process exits is never an exception raised in atexit code, which Python ignores
        for s, h in before.items():
            signal.signal(s, h)
    if _received:  # the exception was lost on the way, but the run did stop early or not at all
        what = "interrupted" if _received[0] == signal.SIGINT else "terminated"
        print(f"{prog}: {what} (the signal's exception was swallowed on the way; the run may "
              "have finished); namespaces and workers removed", file=sys.stderr)
        return 128 + _received[0]
    return status


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block is done (a report being written after the
    first one); they are delivered, and unwind as usual, when it ends. Python handlers run in
    the main thread whichever thread the signal reached, so a signal mask (per thread) would
    not hold them while other threads run: the handlers are swapped for a recorder instead."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers run in the main thread only: nothing reaches this one to hold
        return
    held: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in _DEFERRED}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])


def why_stopped(exc: BaseException) -> str:
    """What cut a run short, in a few words: Ctrl-C, SIGTERM, a namespace worker's failure,
    or any other exception."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C)"
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else 1
        if code > 128:
            try:
                return f"terminated ({signal.Signals(code - 128).name})"
            except ValueError:
                pass
        return f"exited with status {exc.code}"
    if isinstance(exc, EnvironmentProblem):
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"the kernel backend failed: {first}"
    return f"failed: {type(exc).__name__}: {exc}"
