"""The HTML reports in a real headless browser (Debian's chromium over the DevTools pipe):
what a person would use is there and works, no script error, no fetch, and a screenshot that
is not blank (the same check fails on an empty or broken page)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest
from cdp import CHROMIUM, MISSING, Browser, decode_png
from html_sample import REASON_MARK, big_report, matrix_columns, run_report

from harness.html_report import DIVERGED_COLOUR, matrix_page, run_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        print(f"\ntests/browser: SKIPPED, {MISSING}")
        pytest.skip(MISSING)
    b = Browser.start()
    try:
        yield b
    finally:
        b.close()
    # nothing of ours left: the browser and its helpers were started with this profile
    left = subprocess.run(["pgrep", "-f", b.profile], capture_output=True, text=True).stdout.split()
    assert left == [] and not os.path.exists(b.profile)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    run = folder / "run.html"
    run.write_text(run_page(run_report()))
    grid = folder / "matrix.html"
    grid.write_text(matrix_page(matrix_columns(folder), "sockharness: scenario x kernel"))
    yield {"run": run, "matrix": grid, "folder": folder}
    shutil.rmtree(folder, ignore_errors=True)


def load(browser, path) -> None:
    browser.load(path.as_uri())
    assert browser.problems() == []
    assert browser.requests() == [path.as_uri()], "the page asked for something besides itself"


def q(selector: str, what: str = "e => e.textContent") -> str:
    return f"Array.from(document.querySelectorAll({json.dumps(selector)}), {what})"


def test_run_page_shows_summary_divergence_skip_and_spread(browser, pages):
    load(browser, pages["run"])
    csp = browser.evaluate("document.querySelector('meta[http-equiv=Content-Security-Policy]').content")
    assert "default-src 'none'" in csp
    features = browser.evaluate(q("table.features tr td:first-child"))
    assert features == ["bind", "groups", "lookup", "versions", "TOTAL"]
    assert browser.evaluate(q("table.features svg.bar rect", "e => e.getAttribute('fill')")).count(DIVERGED_COLOUR) == 3
    assert "2 of 7 scenarios diverged" in browser.evaluate("document.querySelector('.verdict').textContent")

    # a divergence: closed, then opened by a click on its summary: the reason and reproducer show
    sel = "details.divergence"
    assert browser.evaluate(f"document.querySelectorAll('{sel}').length") == 2
    reproducer = f"document.querySelector('{sel} pre.reproducer')"
    assert browser.evaluate(f"{reproducer}.checkVisibility()") is False
    browser.click(f"{sel} summary")
    assert browser.evaluate(f"document.querySelector('{sel}').open") is True
    assert browser.evaluate(f"{reproducer}.checkVisibility()") is True
    shown = browser.evaluate(f"document.querySelector('{sel}').innerText")
    assert REASON_MARK in shown and "reproducer" in shown and "bind(b, 10.0.0.1:8080) = EADDRINUSE" in shown
    assert "conflict\\x1b.scn" in shown  # the control character made visible

    skips = browser.evaluate(q("ul.skipped .skip-reason"))
    assert skips == ["@kernel < 5.0 excludes profile 6.18"]
    charts = browser.evaluate(q("svg.spread", "e => [e.getAttribute('aria-label'), e.getBoundingClientRect().height]"))
    assert [c[0] for c in charts] == ["tests/scenarios/groups/three.scn: group [s0, s1, s2], 40 picks",
                                      "tests/scenarios/lookup/property.scn: group [s0, s1, s2], 40 picks"]
    assert all(h > 50 for _, h in charts)
    assert browser.problems() == []


def test_filter_and_only_problems_hide_rows(browser, pages):
    load(browser, pages["run"])
    visible_rows = q("table.scenarios tr[data-row]", "e => e.checkVisibility()")
    assert browser.evaluate(visible_rows).count(True) == 7
    browser.click("#problems")
    assert browser.evaluate("document.getElementById('problems').checked") is True
    assert browser.evaluate(visible_rows).count(True) == 3  # 2 divergent, 1 skipped
    browser.click("#problems")
    browser.click("#filter")
    browser.send("Input.insertText", text="ok1")
    assert browser.evaluate(visible_rows).count(True) == 1
    assert browser.problems() == []


def test_matrix_page_puts_problems_first_and_groups_agreement(browser, pages):
    load(browser, pages["matrix"])
    rows = browser.evaluate(q("table.matrix tr[data-row]", "e => [e.dataset.row, e.cells[0].innerText.split('\\n')[0]]"))
    assert rows == [["bad", "tests/scenarios/bind/conflict\\x1b.scn"], ["bad", "tests/scenarios/versions/old.scn"],
                    ["ok", "bind: 3 scenario(s) agree on every kernel"],
                    ["ok", "groups: 1 scenario(s) agree on every kernel"]]
    browser.click("table.matrix td.diverge details summary")
    text = browser.evaluate("document.querySelector('table.matrix td.diverge').innerText")
    assert REASON_MARK in text and "reproducer" in text  # from the 5.10 corpus JSON
    assert "skipped" in browser.evaluate("document.querySelector('table.matrix td.skipped').innerText")
    assert "bind.bhash2 (5.10)" in browser.evaluate(q("table.matrix tr.agreeing td:last-child"))[0]
    assert "timed out after 900 s" in browser.evaluate("document.querySelector('table.kernels').innerText")
    assert browser.problems() == []


def test_a_run_of_100000_steps_loads(browser, tmp_path):
    path = tmp_path / "big.html"
    path.write_text(run_page(big_report()))
    t0 = time.monotonic()
    load(browser, path)
    assert time.monotonic() - t0 < 5
    assert "of 1931 scenarios shown" in browser.evaluate("document.body.innerText")


def test_a_fetch_would_be_seen(browser, tmp_path):
    """The two checks above can fail: a page asking for an image and a remote script is
    refused by the CSP (a console error) and its requests are recorded."""
    page = run_page(run_report()).replace("</body>", '<img src="http://fetch.invalid/x.png">'
                                          '<script src="http://fetch.invalid/x.js"></script></body>')
    path = tmp_path / "fetching.html"
    path.write_text(page)
    browser.load(path.as_uri())
    assert any("Content Security Policy" in p for p in browser.problems())
    bare = tmp_path / "bare.html"
    bare.write_text('<!doctype html><img src="http://fetch.invalid/x.png"><script>throw new Error("boom")</script>')
    browser.load(bare.as_uri())
    assert "http://fetch.invalid/x.png" in browser.requests()
    assert any("boom" in p for p in browser.problems())


# ---- the screenshot ------------------------------------------------------------------------


def rendered(png: bytes) -> list[str]:
    """What is wrong with a screenshot of a run page with a divergence ([] when nothing):
    it must be mostly not one colour, and show the divergence colour over a real area."""
    width, height, channels, pixels = decode_png(png)
    counts: dict[bytes, int] = {}
    for i in range(0, len(pixels), channels * 3):  # every third pixel is plenty
        px = pixels[i:i + 3]
        counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    background = max(counts.values())
    red = bytes.fromhex(DIVERGED_COLOUR[1:])
    out = []
    if total - background < 0.05 * total:
        out.append(f"{(total - background) / total:.1%} of the pixels differ from the background")
    if counts.get(red, 0) < 0.005 * total:
        out.append(f"divergence colour {DIVERGED_COLOUR} on {counts.get(red, 0)} of {total} sampled pixels")
    if len(counts) < 8:
        out.append(f"only {len(counts)} colours")
    return out


def test_screenshot_of_the_run_page_is_not_blank(browser, pages, tmp_path):
    load(browser, pages["run"])
    png = browser.screenshot()
    (tmp_path / "run.png").write_bytes(png)
    assert decode_png(png)[:2] == (1280, 900)
    assert rendered(png) == []


@pytest.mark.parametrize("broken", ["empty", "unclosed style", "script error"])
def test_screenshot_check_fails_on_an_empty_or_broken_page(browser, tmp_path, broken):
    page = run_page(run_report())
    if broken == "empty":
        page = "<!doctype html><title>x</title>"
    elif broken == "unclosed style":  # everything after <style> is taken as CSS: nothing shows
        page = page.replace("</style>", "", 1)
    else:  # the body replaced by a script that fails
        head = page.split("<body>")[0]
        page = head + "<body><script>document.body.innerHTML = render(report)</script></body></html>"
    path = tmp_path / "broken.html"
    path.write_text(page)
    browser.load(path.as_uri())
    assert rendered(browser.screenshot()) != []
