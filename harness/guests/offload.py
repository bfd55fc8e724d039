"""Hash-secret calibration done by the host for a guest, over the shared results folder: the
host's half (the guest's is harness/calibrate.py:calibrate_here_or_host).

Under TCG the guest's brute force over 2**32 secrets takes ~40 s of emulated CPU per kernel; the
host computes the same function natively in ~1 s. The guest writes its observations (which
come from the guest kernel) as <id>.request.json into SOCKH_CALIBRATE_DIR and waits for
<id>.reply.json; without a reply in time it searches itself. Same inputs, same function.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from harness.calibrate import Observation, calibrate


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
