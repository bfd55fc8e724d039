"""Until a program of ours has imported what it needs, and again once its run is over, Ctrl-C or
SIGTERM ends it with one line and 128 + the signal (nothing to clean up then), never an import
traceback or an exception lost in exit code; harness/signals.py:run_interruptible handles them
in between. Only when started as a
program (`sockharness`, or `python -m harness…`, which imports this package while argv[0] is
still "-m"): a library user's own handlers are left alone."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

STARTING = (signal.SIGINT, signal.SIGTERM)


def _while_starting(signum, frame) -> None:
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] not in ("-m", "-c") else "sockharness"
    os.write(2, f"{prog}: {signal.Signals(signum).name} with nothing to clean up (the run had not begun, "
                f"or had ended)\n".encode())
    os._exit(128 + signum)


def started_as_program() -> bool:
    return bool(sys.argv) and (sys.argv[0] == "-m" or Path(sys.argv[0]).name == "sockharness")


if started_as_program():
    for _s in STARTING:
        signal.signal(_s, _while_starting)
