"""html_report.py and bench's chart without a browser: escaping, the fallback reproducer,
the spread's predictions, the matrix's order, the caps on a big run (tests/browser loads them)."""

from __future__ import annotations

import base64
import hashlib
import json
import re

from html_sample import REASON_MARK, big_report, matrix_columns, run_report

from harness import html_report
from harness.bench import Measured, chart_page


def test_run_page_has_each_part_and_the_printed_divergence():
    page = html_report.run_page(run_report())
    for part in ('id=summary', 'class="divergence"', 'class=skipped', 'svg class="spread"', 'class=scenarios'):
        assert part in page
    assert page.count('<details class="divergence"') == 2
    assert REASON_MARK in page and "reproducer (steps up to line 6" in page


def test_everything_is_escaped_and_control_characters_show():
    report = run_report()
    sc = report["scenarios"][0]
    sc["path"] = "x/<script>alert(1)</script>\x07.scn"
    sc["divergence"] = "DIVERGED </pre><img src=x onerror=alert(1)>\x1b[2J"
    page = html_report.run_page(report)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\x07.scn" in page and "\\x1b[2J" in page
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", page)


def test_without_the_printed_divergence_the_steps_up_to_the_first_problem_are_shown():
    report = run_report()
    for sc in report["scenarios"]:
        sc.pop("divergence", None)
    page = html_report.run_page(report)
    assert "steps up to line 6 of tests/scenarios/bind/conflict\\x1b.scn" in page
    assert "listen(a, 5)\nb = socket(AF_INET, SOCK_STREAM)\nbind(b, 10.0.0.1:8080)</pre>" in page


def test_the_script_is_the_one_the_policy_allows_and_nothing_is_fetched():
    page = html_report.run_page(run_report())
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
    assert not re.search(r"""\b(src|href)\s*=""", page.replace(html_report.CSP, ""))


def test_spread_predictions_exact_and_even():
    exact, even = html_report.spreads(run_report()["scenarios"])
    assert (exact.scenario, exact.members, exact.picks, exact.exact, exact.problems) == (
        "tests/scenarios/groups/three.scn", ["s0", "s1", "s2"], 40, 40, 1)
    assert sum(exact.model.values()) == sum(exact.kernel.values()) == 40
    assert sum(abs(exact.model[m] - exact.kernel[m]) for m in exact.members) == 2  # one pick moved
    assert even.exact == 0 and all(abs(v - 40 / 3) < 1e-9 for v in even.model.values())


def test_a_long_group_is_drawn_from_the_members_seen():
    sc = {"path": "g.scn", "skipped": None, "agreed": True, "steps": [
        {"model": {"value": f"s{i}", "reason": "x is in group [s0, s1, s2, s3, ..., s10, s11] (12 sockets); h"},
         "kernel": {"value": f"s{i}"}, "checks": ["exact"], "problems": []} for i in (11, 2, 10, 2)]}
    (sp,) = html_report.spreads([sc])
    assert sp.group == "[s0, s1, s2, s3, ..., s10, s11] (12 sockets)" and sp.members == ["s2", "s10", "s11"]
    chart = html_report.spread_chart(sp)
    assert chart.count('fill="#3b6fb6"><title>') == 3 and f'fill="{html_report.DIVERGED_COLOUR}"><title>' not in chart


def test_a_big_run_gives_a_bounded_page_that_says_what_it_left_out():
    report = big_report()
    assert sum(len(sc["steps"]) for sc in report["scenarios"]) >= 100_000
    page = html_report.run_page(report)
    assert len(page) < 4_000_000
    assert page.count('<details class="divergence"') == html_report.MAX_DIVERGENCES
    assert page.count('<figure class="spread"') == html_report.MAX_GROUPS
    diverged = sum(not sc["agreed"] and not sc["skipped"] for sc in report["scenarios"])
    assert f"{html_report.MAX_DIVERGENCES} of {diverged} divergences shown" in page
    assert f"{html_report.MAX_ROWS} of {len(report['scenarios'])} scenarios shown" in page


def test_matrix_rows_problems_first_then_agreement_by_feature(tmp_path):
    page = html_report.matrix_page(matrix_columns(tmp_path), "t")
    rows = re.findall(r'<tr data-row="(\w+)"[^>]*><td>(?:<code>|<details><summary>)([^<]*)', page)
    assert rows == [("bad", "tests/scenarios/bind/conflict\\x1b.scn"), ("bad", "tests/scenarios/versions/old.scn"),
                    ("ok", "bind: 3 scenario(s) agree on every kernel"),
                    ("ok", "groups: 1 scenario(s) agree on every kernel")]
    assert "bind.bhash2 (5.10)" in page and REASON_MARK in page  # the divergence from 5.10's corpus JSON
    assert "timed out after 900 s" in page


def test_bench_chart_on_fixed_numbers():
    rows = [(8, Measured("g8", 40_000, 1.6, True), Measured("s8", 2_000, 1.0, True)),
            (256, Measured("g256", 40_000, 2.5, False), Measured("s256", 2_000, 1.25, True))]
    page = chart_page(rows)
    assert "25,000/s" in page and "16,000/s, DIVERGED" in page and "2,000/s" in page and "1,600/s" in page
    assert "target 50,000/s" in page and "group of 256: 10.0x scapy" in page
    widths = [float(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)" height="18"', page)]
    assert widths[0] > widths[2] > widths[1] > widths[3] > 0  # 25,000 > 16,000 > 2,000 > 1,600
    assert json.dumps(page)  # one string, nothing else to ship
