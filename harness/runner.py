"""Collect scenario files, run them on the chosen backends, compare."""

from __future__ import annotations

import enum
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.compare import ScenarioResult, compare
from harness.environment import EnvironmentProblem
from harness.model_backend import ModelExecutor
from harness.parser import ScenarioError, parse_file
from harness.scenario import Scenario
from harness.spec import spec_for
from harness.steps import declared
from model.profiles import Profile

if TYPE_CHECKING:  # the kernel side loads only when a run uses it (explain, the model alone: never)
    from harness.worker import Pool


class Backend(enum.Enum):
    BOTH = "both"
    MODEL = "model"
    KERNEL = "kernel"

    @property
    def uses_kernel(self) -> bool:
        return self is not Backend.MODEL

    @property
    def uses_model(self) -> bool:
        return self is not Backend.KERNEL


def collect(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders searched for *.scn (sorted); a missing path is an error."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("*.scn"))
            if not found:
                raise ScenarioError(p, 0, 0, "folder holds no .scn files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            raise ScenarioError(p, 0, 0, "no such file or folder")
    return files


def load(paths: Iterable[str | Path]) -> list[Scenario]:
    """Parse everything before running anything, so a typo fails fast."""
    return [parse_file(f) for f in collect(paths)]


REQUEST_PRUNE_AGE = 7.0  # seconds: see Runner._outlived_request_timer


@dataclass
class Runner:
    """Runs scenarios; owns no resources (the caller owns the Pool)."""

    profile: Profile
    backend: Backend = Backend.BOTH
    seed: int = 0
    pool: Pool | None = None
    expectations: bool = True  # check the files' `= …` (False: model against kernel only)
    hash_problem: str = ""  # set when calibration found no secret for the profile's formula

    def __post_init__(self) -> None:
        # the kernel version whose expectations apply, and why when it is not the profile's own
        self.spec, self.spec_note = spec_for(self.profile) if self.expectations else (None, "")

    def skip_reason(self, scenario: Scenario) -> str:
        missing = self.profile.unsupported(k for k, _ in scenario.sysctls)
        if missing:
            return missing
        cpus = os.cpu_count() or 1
        if self.backend.uses_kernel and scenario.cpu is not None and scenario.cpu >= cpus:
            return f"@cpu {scenario.cpu} needs {scenario.cpu + 1} CPUs; this machine has {cpus}"
        for rng in scenario.kernel:
            if not rng.admits(self.profile.version):
                return f"@kernel {rng} excludes profile {self.profile.name}"
        return ""

    def run_one(self, scenario: Scenario) -> ScenarioResult:
        if self.skip_reason(scenario):
            return ScenarioResult(scenario, skipped=self.skip_reason(scenario))
        t0 = time.monotonic()
        self.submit(scenario)
        result = self.finish(scenario)
        result.seconds = time.monotonic() - t0
        return result

    def _secret(self, scenario: Scenario) -> int | None:
        """The namespace's calibrated hash secret, if the scenario sends SYNs to compare."""
        if not (self.backend.uses_kernel and self.backend.uses_model):
            return None
        # the hash decides listeners for SYNs and connect()s, and where migrated connections go
        if not scenario.hashes_matter:
            return None
        assert self.pool is not None
        calibration = self.pool.hash_secret(self.profile.ehash_lport_outside)
        self.hash_problem = calibration.problem
        return calibration.secret

    def _udp_secret(self, scenario: Scenario) -> int | None:
        """The namespace's calibrated udp_ehashfn secret, if the scenario's datagrams need it."""
        if not (self.backend.uses_kernel and self.backend.uses_model and scenario.udp_hashes_matter):
            return None
        assert self.pool is not None
        calibration = self.pool.udp_secret()
        self.hash_problem = self.hash_problem or calibration.problem
        return calibration.secret

    def _waits_for_calibration(self, scenario: Scenario) -> bool:
        """Would submitting it now need a calibration while another scenario is in flight (the
        probe cannot queue behind it)? Then it is submitted once the pool is idle."""
        if not (self.backend.uses_kernel and self.backend.uses_model and self.pool is not None
                and self.pool.inflight):
            return False
        return ((scenario.hashes_matter and not self.pool.calibrated(self.profile.ehash_lport_outside))
                or (scenario.udp_hashes_matter and not self.pool.udp_calibrated()))

    def submit(self, scenario: Scenario) -> None:
        if self.backend.uses_kernel:
            assert self.pool is not None, "the kernel backend needs a Pool"
            self._secret(scenario)  # calibrate before the worker is busy
            self._udp_secret(scenario)
            self.pool.submit(scenario)

    def finish(self, scenario: Scenario) -> ScenarioResult:
        """The model's run (while the kernel works on the other core), then the kernel's."""
        generation = self.pool.generation if self.pool else 0
        # the secret of the namespace the scenario runs in: a replacement during its collect()
        # is for the scenarios behind it (it ran in the old namespace, whose secret this is)
        secret, udp = self._secret(scenario), self._udp_secret(scenario)
        model = None
        if self.backend.uses_model:
            model = ModelExecutor(self.profile, self.seed, secret, udp_secret=udp).run(scenario)
        kernel = None
        if self.backend.uses_kernel:
            assert self.pool is not None
            kernel = self.pool.collect(scenario)
            replaced = self.pool.generation != generation  # after this one: it was not clean
            hashes6, udp6 = self.pool.last_hashes6, self.pool.last_udp_hashes6
            if model is not None and (replaced or hashes6 or udp6 or any(o.one_of or o.candidates for o in model)):
                # follow the kernel's random picks, with the kernel's inet6_ehashfn of the
                # scenario's IPv6 tuples
                choices = [o.choice for o in kernel]
                model = ModelExecutor(self.profile, self.seed, secret, hashes6, udp, udp6).run(scenario, choices)
        result = compare(scenario, model, kernel, self.spec)
        if kernel is not None and not result.agreed and self.pool.last_unsettled:
            result.timing = True
            result.skipped = (
                "diverged after a close whose orphan did not become TIME_WAIT: the peer's ACK "
                "met the socket still owned by close() (tcp_rcv_state_process, TCP_FIN_WAIT1: "
                "sock_owned_by_user keeps a FIN_WAIT2 orphan for tcp_fin_timeout), a race only "
                "a slow kernel loses; the model has no timing")
        elif kernel is not None and not result.agreed and self._outlived_request_timer(scenario):
            result.timing = True
            result.skipped = (
                f"diverged after {self.pool.last_seconds:.1f} s on the kernel with requests "
                f"pending ({self.pool.last_retransmits} SYN-ACK retransmits): past "
                f"{REQUEST_PRUNE_AGE:.0f} s, or once request timers fire, reqsk_timer_handler "
                "may prune them, which the model (no clock) does not follow")
        return result

    def _outlived_request_timer(self, scenario: Scenario) -> bool:
        """Did a SYN-queue request live long enough for its timer to drop it? With the queue
        over half full, inet_connection_sock.c:reqsk_timer_handler cuts the SYN-ACK retries
        to 2 once no request is young, so the oldest go at their third timeout: 1 + 2 + 4 s
        (TCP_TIMEOUT_INIT, doubling). Scenarios run well under 1 s natively; an emulated
        kernel can take longer."""
        assert self.pool is not None
        # the timer ran if it retransmitted a SYN-ACK (TcpExt TCPSynRetrans rose, counted by
        # tcp_output.c:tcp_rtx_synack): a direct sign, besides the elapsed time
        timers = self.pool.last_seconds >= REQUEST_PRUNE_AGE or self.pool.last_retransmits > 0
        return timers and any(declared(s.verb).leaves_requests for s in scenario.steps)

    def run(
        self, scenarios: list[Scenario], progress: Callable[[int, int, ScenarioResult], None] | None = None,
        results: list[ScenarioResult] | None = None,
    ) -> list[ScenarioResult]:
        """All scenarios, the next one always queued on the kernel while this one's model runs.
        Each result is appended to `results` (a new list if None) as soon as it is known, so
        a caller interrupted midway (Ctrl-C, SIGTERM) still has those of what ran; a scenario
        the namespace worker failed on is appended with its `error` before that propagates."""
        runnable = [s for s in scenarios if not self.skip_reason(s)]
        following = {id(a): b for a, b in zip(runnable, runnable[1:], strict=False)}
        for s in runnable:  # calibrate now: later the worker always has a scenario queued
            if self._secret(s) is not None or self.hash_problem:
                break
        results = [] if results is None else results
        failed = False
        submitted: set[int] = set()
        try:
            if runnable:
                self.submit(runnable[0])
                submitted.add(id(runnable[0]))
            for i, s in enumerate(scenarios, start=1):
                t0 = time.monotonic()
                if self.skip_reason(s):
                    r = ScenarioResult(s, skipped=self.skip_reason(s))
                else:
                    nxt = following.get(id(s))
                    try:
                        if id(s) not in submitted:  # held back for its calibration: the pool is idle
                            self.submit(s)
                            submitted.add(id(s))
                        if nxt is not None and not self._waits_for_calibration(nxt):
                            self.submit(nxt)
                            submitted.add(id(nxt))
                        r = self.finish(s)
                    except EnvironmentProblem as e:
                        results.append(ScenarioResult(s, error=str(e), seconds=time.monotonic() - t0))
                        raise
                r.seconds = time.monotonic() - t0
                results.append(r)
                if progress:
                    progress(i, len(scenarios), r)
        except BaseException:
            failed = True
            raise
        finally:
            if self.pool is not None:
                try:
                    self.pool.discard_inflight()
                except EnvironmentProblem:
                    if not failed:  # else the first failure is the one to report
                        raise
        return results
