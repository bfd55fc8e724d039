"""The soak tests' header (the seed of this session's random delays: SOAK_SEED reruns it) and
the kernel they boot."""

from __future__ import annotations

import pytest


def pytest_report_header(config):
    from test_signals import RUNS, SEED

    return f"soak: SOAK_SEED={SEED} SOAK_RUNS={RUNS}"


@pytest.fixture(scope="session")
def debian_6_12():
    """QEMU's tools and Debian's 6.12 kernel in .cache/kernels (fetched once, ~60 MB)."""
    import shutil

    from harness.guests import fetch
    from harness.guests.command import CACHE

    if not shutil.which("qemu-system-x86_64"):
        pytest.fail("qemu-system-x86_64 is missing: `make kernel-tools` installs it")
    fetch.fetch_tools(CACHE)
    fetch.fetch_release(next(k for k in fetch.KERNELS if k.version == "6.12"), CACHE)
