"""Markers, the shared namespace pool, and the rule that a skipped kernel half is not green."""

from __future__ import annotations

import os

import pytest

IS_ROOT = os.geteuid() == 0
NOT_ROOT = "not root: the kernel half (namespaces, real sockets) cannot run"
# set by harness/guests/guest.py: the tests run inside a kernel booted under QEMU (TCG)
IN_GUEST = os.environ.get("SOCKH_GUEST") == "1"
NO_BROWSER = "make browser-tools"  # in the skip reason of tests/browser without chromium


def pytest_configure(config):
    config.addinivalue_line("markers", "native_speed(reason): cannot run in an emulated guest "
                            "(a native-speed threshold, or hours under TCG); skipped there with the reason")
    config.addinivalue_line("markers", "browser: loads the HTML reports in headless chromium "
                            "(tests/browser); skipped, and said at the end, without it")


def pytest_collection_modifyitems(config, items):
    # markers, not item.keywords: keywords hold every folder name up to the checkout's own, and
    # a checkout in a folder named "soak" (or "kernel") had every test deselected (or skipped)
    if "soak" not in (config.getoption("markexpr") or ""):  # `make soak-signals` asks with -m soak
        soak = [item for item in items if item.get_closest_marker("soak") is not None]
        if soak:
            config.hook.pytest_deselected(items=soak)
            items[:] = [item for item in items if item.get_closest_marker("soak") is None]
    for item in items:
        mark = item.get_closest_marker("native_speed")
        if IN_GUEST and mark is not None:
            item.add_marker(pytest.mark.skip(reason=f"native speed only: {mark.args[0]}"))
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason=NOT_ROOT)
    for item in items:
        if item.get_closest_marker("kernel") is not None:
            item.add_marker(skip)


def pytest_sessionfinish(session, exitstatus):
    """A run that skipped kernel tests fails unless ALLOW_NO_ROOT=1 says that is intended."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    native = [r for r in skipped if "native_speed" in r.keywords and IN_GUEST]
    if native:
        reporter.write_line(f"{len(native)} test(s) skipped in this guest: they need native speed "
                            "(reasons above, -rs)")
    no_browser = [r for r in skipped if "browser" in r.keywords and NO_BROWSER in str(r.longrepr)]
    if no_browser:
        reporter.write_line(f"!!! {len(no_browser)} browser test(s) SKIPPED: /usr/bin/chromium is missing "
                            f"({NO_BROWSER} installs it). The HTML reports were NOT checked in a browser.",
                            yellow=True, bold=True)
        if os.environ.get("SOCKH_REQUIRE_BROWSER") == "1" and session.exitstatus == 0:
            reporter.write_line("Failing the run: SOCKH_REQUIRE_BROWSER=1 (.ci/run) wants them run.", red=True)
            session.exitstatus = 1
    # kernel tests skipped because this is not root (a test may also skip for a kernel fact
    # it prints, e.g. 5.10 cannot SOCK_DESTROY a TIME_WAIT socket: that one is no alarm)
    skipped_kernel = [r for r in skipped if "kernel" in r.keywords and NOT_ROOT in str(r.longrepr)]
    if not skipped_kernel:
        return
    reporter.write_line("")
    reporter.write_line(
        f"!!! {len(skipped_kernel)} kernel test(s) SKIPPED ({NOT_ROOT}). "
        "The model was NOT checked against a real kernel.", red=True, bold=True,
    )
    if os.environ.get("ALLOW_NO_ROOT") != "1" and session.exitstatus == 0:
        reporter.write_line("Failing the run; set ALLOW_NO_ROOT=1 to accept a model-only run.", red=True)
        session.exitstatus = 1


@pytest.fixture(scope="session")
def pool():
    """One namespace worker for the whole session, removed however the session ends."""
    from harness.worker import Pool

    with Pool() as p:
        yield p
