"""One way every command ends on Ctrl-C and SIGTERM: the `with Pool()` blocks unwind (workers
and namespaces removed), one line is printed, and the exit status is 128 + the signal."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable


def _on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


def run_interruptible(prog: str, body: Callable[[], int]) -> int:
    """body()'s status; SIGTERM unwinds as SystemExit(143), Ctrl-C as 130, no traceback."""
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return body()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; namespaces and workers removed", file=sys.stderr)
        return 128 + signal.SIGINT
