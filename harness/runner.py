"""Collect scenario files, run them on the chosen backends, compare."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.compare import ScenarioResult, compare
from harness.model_backend import ModelExecutor
from harness.parser import ScenarioError, parse_file
from harness.scenario import Scenario
from harness.worker import Pool
from model.profiles import Profile


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


@dataclass
class Runner:
    """Runs scenarios; owns no resources (the caller owns the Pool)."""

    profile: Profile
    backend: Backend = Backend.BOTH
    seed: int = 0
    pool: Pool | None = None
    hash_problem: str = ""  # set when calibration found no secret for the profile's formula

    def skip_reason(self, scenario: Scenario) -> str:
        for rng in scenario.kernel:
            if not rng.admits(self.profile.version):
                return f"@kernel {rng} excludes profile {self.profile.name}"
        return ""

    def run_one(self, scenario: Scenario) -> ScenarioResult:
        why = self.skip_reason(scenario)
        if why:
            return ScenarioResult(scenario, skipped=why)
        kernel = None
        secret = None
        if self.backend.uses_kernel:
            assert self.pool is not None, "the kernel backend needs a Pool"
            if self.backend.uses_model and any(s.verb == "syn" for s in scenario.steps):
                calibration = self.pool.hash_secret(self.profile.ehash_lport_outside)
                secret, self.hash_problem = calibration.secret, calibration.problem
            kernel = self.pool.run(scenario)
        model = None
        if self.backend.uses_model:
            choices = [o.choice for o in kernel] if kernel else None
            model = ModelExecutor(self.profile, self.seed, secret).run(scenario, choices)
        return compare(scenario, model, kernel)

    def run(
        self, scenarios: list[Scenario], progress: Callable[[int, int, ScenarioResult], None] | None = None
    ) -> list[ScenarioResult]:
        results = []
        for i, s in enumerate(scenarios, start=1):
            r = self.run_one(s)
            results.append(r)
            if progress:
                progress(i, len(scenarios), r)
        return results
