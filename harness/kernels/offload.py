"""Hash-secret calibration done by the host for a guest, over the shared results folder.

Under TCG the guest's brute force over 2**32 secrets takes ~40 s of emulated CPU per kernel; the
host computes the same function natively in ~1 s. The guest writes its observations (which
come from the guest kernel) as <id>.request.json into SOCKH_CALIBRATE_DIR and waits for
<id>.reply.json; without a reply in time it searches itself. Same inputs, same function.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from harness.calibrate import Observation, calibrate

ENV = "SOCKH_CALIBRATE_DIR"
WAIT = 120.0


def calibrate_here_or_host(observations: Sequence[Observation], lport_outside: bool) -> list[int]:
    """calibrate(); in a guest whose host serves requests, by the host."""
    folder = os.environ.get(ENV)
    if not folder:
        return calibrate(observations, lport_outside)
    name = uuid.uuid4().hex
    request, reply = Path(folder) / f"{name}.request.json", Path(folder) / f"{name}.reply.json"
    tmp = request.with_suffix(".tmp")
    tmp.write_text(json.dumps({"lport_outside": lport_outside,
                               "observations": [dataclasses.asdict(o) for o in observations]}))
    tmp.rename(request)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if reply.exists():
            fits = json.loads(reply.read_text())["fits"]
            reply.unlink()
            return fits
        time.sleep(0.02)
    request.unlink(missing_ok=True)
    return calibrate(observations, lport_outside)


class Server:
    """Answers a guest's calibration requests in `folder` until stopped (a host thread)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.served = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(0.02):
            for request in sorted(self.folder.glob("*.request.json")):
                data = json.loads(request.read_text())
                fits = calibrate([Observation(**o) for o in data["observations"]], data["lport_outside"])
                reply = request.with_name(request.name.replace(".request.", ".reply."))
                tmp = reply.with_suffix(".tmp")
                tmp.write_text(json.dumps({"fits": fits}))
                tmp.rename(reply)
                request.unlink()
                self.served += 1
