"""The HTML reports: one self-contained page per run (`run --html`) and per scenario x kernel
matrix (`kernels`), made from the run's JSON (report.to_json) and the matrix's columns.

Self-contained: inline CSS, inline SVG, one small inline script (a filter box and an "only
problems" toggle) allowed by its hash in a Content-Security-Policy that forbids every fetch.
Everything shown is escaped with its control characters made visible, and what is drawn is
capped so that a run of 10^5 steps still gives a page a browser loads (the page says what it
left out).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePosixPath

from harness import svg
from harness.report import outcome_text, visible

MAX_DIVERGENCES = 100  # scenarios expanded, each with its outcomes and reproducer
MAX_STEPS = 40  # steps written out per divergence, up to its first problem
MAX_TEXT = 8_000  # characters of a divergence's printed text
MAX_ROWS = 1_500  # scenario rows in the run's table, problems first
MAX_GROUPS = 24  # reuseport spread charts
MAX_MEMBERS = 32  # bars per spread chart

DIVERGED_COLOUR = "#d62728"  # tests/browser look for it in the screenshot
COLOURS = {"diverged": DIVERGED_COLOUR, "error": "#ff7f0e", "skipped": "#9e9e9e",
           "unchecked": "#c7d7ef", "agreed": "#2ca02c"}
KERNEL_COLOUR = "#3b6fb6"

_SCRIPT = """const q=document.getElementById('filter'),p=document.getElementById('problems');
function apply(){const t=q.value.toLowerCase();
for(const e of document.querySelectorAll('[data-row]')){
e.hidden=(p.checked&&e.dataset.row==='ok')||(t!==''&&!e.textContent.toLowerCase().includes(t));}}
q.addEventListener('input',apply);p.addEventListener('change',apply);"""
_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
# no fetch of any kind: a page that asked for one would show a CSP error in the console
CSP = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_SCRIPT_HASH}'; "
       "img-src data:; base-uri 'none'; form-action 'none'")

_CSS = """body{font-family:sans-serif;margin:1em 2em;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;
vertical-align:top;text-align:left}th{background:#f2f2f2}td.n{text-align:right}
pre{background:#f7f7f7;padding:6px;overflow-x:auto;font-size:12px;white-space:pre-wrap}
.verdict{padding:8px 12px;color:#fff;font-weight:bold;font-size:18px}
.verdict.bad{background:#d62728}.verdict.ok{background:#2ca02c}.verdict.warn{background:#ff7f0e}
.controls{position:sticky;top:0;background:#fff;padding:4px 0;border-bottom:1px solid #ddd}
details{margin:4px 0}details.divergence{border-left:4px solid #d62728;padding-left:6px}
summary{cursor:pointer}.note{color:#666;font-style:italic}.reason{color:#333}
td.diverge,td.diverged{background:#f8c8c8}td.agree,td.agreed{background:#d7f5d7}
td.skipped{background:#eee}td.not-run,td.error{background:#f5e6b8}td.unchecked{background:#e4ecf7}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{font-weight:bold}dd{margin:0}"""


def _e(text: object) -> str:
    return html.escape(visible(text))


def page(title: str, body: str, *, controls: bool = True) -> str:
    """A whole page around `body`: the CSP, the style, and (with controls) the filter box
    and the "only problems" toggle, which act on every element marked data-row."""
    bar = ""
    if controls:
        bar = ('<div class="controls"><label>filter <input id="filter" type="search" '
               'placeholder="path, call, reason"></label> <label><input id="problems" '
               f'type="checkbox"> only problems</label></div><script>{_SCRIPT}</script>')
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n"
            f"<body><h1>{_e(title)}</h1>{bar}{body}</body></html>\n")


def _more(shown: int, total: int, what: str) -> str:
    return (f'<p class="note">{shown} of {total} {what} shown; the rest are in the JSON report.</p>'
            if total > shown else "")


# ---- the run page -------------------------------------------------------------------------


class Status(Enum):
    """A scenario's verdict in a run, in the order the page lists them."""

    DIVERGED = "diverged"
    ERROR = "error"
    SKIPPED = "skipped"
    UNCHECKED = "unchecked"
    AGREED = "agreed"


def status(sc: dict) -> Status:
    if sc.get("skipped"):
        return Status.SKIPPED
    if sc.get("error"):
        return Status.ERROR
    if not sc.get("agreed"):
        return Status.DIVERGED
    return Status.AGREED if sc.get("checked", True) else Status.UNCHECKED


_ORDER = {s: i for i, s in enumerate(Status)}


def _step_line(s: dict) -> str:
    return s["call"] + (f" = {s['expect']}" if s.get("expect") is not None else "")


def _reproducer(sc: dict) -> str:
    """Without the printed divergence: the steps up to the first problem (the file's @
    directives are not in the JSON)."""
    steps = sc["steps"]
    first = next((i for i, s in enumerate(steps) if s.get("problems")), len(steps) - 1)
    start = max(0, first + 1 - MAX_STEPS)
    lines = [f"# steps up to line {steps[first]['line']} of {sc['path']}; its @ directives are in "
             "the file" if steps else "# no steps"]
    if start:
        lines.append(f"# ... {start} earlier steps left out")
    lines += [_step_line(s) for s in steps[start:first + 1]]
    return "\n".join(lines)


def _divergence(sc: dict) -> str:
    bad = [s for s in sc["steps"] if s.get("problems")]
    first = bad[0] if bad else None
    stated = f" (the file states {first['expect']})" if first and first.get("expect") is not None else ""
    head = (f"line {first['line']}: {first['call']}: model {outcome_text(first['model'], sets=True)}, kernel "
            f"{outcome_text(first['kernel'], sets=True)}{stated}" if first else "diverged")
    rows = []
    for s in bad[:20]:
        reason = (s.get("model") or {}).get("reason", "")
        rows.append(f"<tr><td class=n>{s['line']}</td><td><code>{_e(_step_line(s))}</code></td>"
                    f"<td>{_e(outcome_text(s.get('model'), sets=True))}<div class=reason>{_e(reason)}</div></td>"
                    f"<td>{_e(outcome_text(s.get('kernel'), sets=True))}</td><td>{_e('; '.join(s['problems']))}</td></tr>")
    text = sc.get("divergence") or _reproducer(sc)
    cut = f"\n... ({len(text) - MAX_TEXT} more characters in the JSON)" if len(text) > MAX_TEXT else ""
    label = "as printed: both outcomes, the reason, the reproducer" if sc.get("divergence") else \
        "reproducer (the steps up to the first divergent one)"
    return (f'<details class="divergence" data-row="bad"><summary><code>{_e(sc["path"])}</code> '
            f"{_e(head)}</summary><table><tr><th>line</th><th>step</th><th>model (and why)</th>"
            f"<th>kernel</th><th>problem</th></tr>{''.join(rows)}</table>"
            f"{_more(min(len(bad), 20), len(bad), 'divergent steps')}"
            f'<p>{_e(label)}:</p><pre class="reproducer">{_e(text[:MAX_TEXT] + cut)}</pre></details>')


def _meta(report: dict) -> str:
    items = [(k, v) for k, v in report.items()
             if k not in ("summary", "features", "scenarios") and not isinstance(v, dict | list)
             and v not in ("", None)]
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(str(v).lower() if isinstance(v, bool) else v)}</dd>"
                            for k, v in items) + "</dl>"


def _verdict(report: dict) -> str:
    t = report.get("summary", {})
    if t.get("diverged"):
        cls, text = "bad", f"{t['diverged']} of {t.get('scenarios', '?')} scenarios diverged"
    elif t.get("errors") or report.get("complete") is False:
        cls, text = "warn", f"{t.get('errors', 0)} scenario(s) could not finish"
    else:
        cls, text = "ok", f"all {t.get('agreed', 0)} checked scenarios agreed"
    if report.get("complete") is False:
        text += f"; the run is incomplete: {report.get('incomplete', 'cut short')}"
    extra = f"; {t['skipped']} skipped" if t.get("skipped") else ""
    return f'<p class="verdict {cls}">{_e(text + extra)}</p>'


_FEATURE_COLUMNS = (("scenarios", "scenarios"), ("agreed", "agreed"), ("diverged", "diverged"),
                    ("skipped", "skipped"), ("errors", "errors"), ("unchecked", "unchecked"),
                    ("steps", "steps"), ("steps_checked", "checked"), ("exact", "exact"),
                    ("property", "property"))


def _features(report: dict) -> str:
    """Per feature: scenarios by verdict (drawn and counted) and steps by kind of check."""
    rows = [f"<tr><th>feature</th><th>verdicts</th>{''.join(f'<th>{h}</th>' for _, h in _FEATURE_COLUMNS)}</tr>"]
    tallies = dict(report.get("features", {}))
    tallies["TOTAL"] = report.get("summary", {})
    for name, t in tallies.items():
        t = dict(t)
        t.setdefault("errors", t.get("scenarios", 0) - sum(t.get(k, 0) for k in
                                                             ("skipped", "agreed", "diverged", "unchecked")))
        bar = svg.stacked([(t.get(s.value + ("s" if s is Status.ERROR else ""), 0), COLOURS[s.value], s.value)
                           for s in Status])
        ok = "ok" if not (t.get("diverged") or t.get("errors")) else "bad"
        cells = "".join(f"<td class=n>{_e(t.get(k, 0))}</td>" for k, _ in _FEATURE_COLUMNS)
        rows.append(f'<tr data-row="{ok}"><td>{_e(name)}</td><td>{bar}</td>{cells}</tr>')
    return (f'<table class="features">{"".join(rows)}</table><p class="note">Steps: "checked" were '
            "compared with something; \"exact\" checks compared values, \"property\" checks a random "
            "kernel pick against the set the model allows (a step may have both).</p>")


@dataclass
class Spread:
    """How one reuseport group's picks spread over its members: the kernel's counts against
    the model's (its own pick per exactly checked step, an even share per property check)."""

    scenario: str
    group: str  # as the model's reason names it
    members: list[str]
    kernel: Counter = field(default_factory=Counter)
    model: defaultdict = field(default_factory=lambda: defaultdict(float))
    picks: int = 0
    exact: int = 0
    problems: int = 0


_GROUP = re.compile(r"is in group (\[[^\]]*\](?: \(\d+ sockets\))?)")


def _natural(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def spreads(scenarios: Iterable[dict]) -> list[Spread]:
    """Reuseport picks by scenario and group: a step whose model outcome names the group
    (`one_of`, or its reason's "is in group [...]" where the hash was computed), whose value
    is the member picked (not a syn_only's SYNACK), and that the kernel ran; groups of one
    member left out. Listed divergent first, then by picks."""
    found: dict[tuple[str, str], Spread] = {}
    for sc in scenarios:
        if status(sc) in (Status.SKIPPED, Status.ERROR):
            continue
        for s in sc["steps"]:
            m, k = s.get("model"), s.get("kernel")
            if not m or not k:
                continue
            match = _GROUP.search(m.get("reason", ""))
            if not m.get("one_of") and not match:
                continue
            group = match.group(1) if match else "[" + ", ".join(m["one_of"]) + "]"
            named = m.get("one_of") or ([] if "..." in group else
                                        [x.strip() for x in group.split("]")[0][1:].split(",")])
            # the step's value is the listener picked, not what the SYN got (syn_only: SYNACK)
            if m["value"] not in named and (named or m["value"].isupper() or m["value"].isdigit()):
                continue
            spread = found.get((sc["path"], group))
            if spread is None:
                spread = found[(sc["path"], group)] = Spread(sc["path"], group, list(named))
            spread.picks += 1
            spread.kernel[k["value"]] += 1
            spread.problems += bool(s.get("problems"))
            if m.get("one_of"):  # a property check: any member, as likely as any other
                for name in m["one_of"]:
                    spread.model[name] += 1 / len(m["one_of"])
            else:
                spread.exact += 1
                spread.model[m["value"]] += 1
    out = [sp for sp in found.values() if len(sp.members) != 1]  # one member: nothing spreads
    for sp in out:
        if not sp.members:  # a long group's reason names only its ends: the ones seen, in order
            sp.members = sorted(set(sp.kernel) | set(sp.model), key=_natural)
    return sorted(out, key=lambda sp: (not sp.problems, -sp.picks, sp.scenario))


def spread_chart(sp: Spread) -> str:
    """Bars: the kernel's picks per member (red where they differ from an exact prediction, or
    fall outside the group); ticks: the model's prediction."""
    members = sp.members[:MAX_MEMBERS]
    outside = sorted(set(sp.kernel) - set(sp.members), key=_natural)
    bars = []
    for name in members + outside:
        kernel, model = sp.kernel.get(name, 0), sp.model.get(name, 0.0)
        wrong = name in outside or (sp.exact == sp.picks and kernel != round(model))
        bars.append(svg.Bar(name + (" (not a member)" if name in outside else ""), kernel,
                            DIVERGED_COLOUR if wrong else KERNEL_COLOUR, model,
                            f"{name}: kernel {kernel}, model {model:.1f}",
                            f"{kernel} (model {model:.3g})"))
    kind = ("exact (the model computed every hash)" if sp.exact == sp.picks else
            "an even share (the model can only name the group)" if not sp.exact else "mixed")
    title = f"{sp.scenario}: group {sp.group}, {sp.picks} picks"
    note = _more(len(members), len(sp.members), "members")
    return (f'<figure class="spread" data-row="{"bad" if sp.problems else "ok"}">'
            f"{svg.hbars(bars, title=title, css_class='spread', legend=[(KERNEL_COLOUR, 'kernel picks'), ('#000', 'model prediction (tick)'), (DIVERGED_COLOUR, 'differs')])}"
            f"<figcaption><code>{_e(sp.scenario)}</code>: group {_e(sp.group)}; {sp.picks} picks, "
            f"{sp.problems} divergent; prediction: {_e(kind)}</figcaption>{note}</figure>")


def _spread_section(scenarios: list[dict]) -> str:
    found = spreads(scenarios)
    if not found:
        return "<p>No reuseport group was picked from on both backends in this run.</p>"
    return ("".join(spread_chart(sp) for sp in found[:MAX_GROUPS])
            + _more(min(len(found), MAX_GROUPS), len(found), "groups"))


def _scenario_rows(scenarios: list[dict]) -> str:
    ordered = sorted(scenarios, key=lambda sc: _ORDER[status(sc)])
    rows = ["<tr><th>scenario</th><th>feature</th><th>verdict</th><th>steps</th><th>exact</th>"
            "<th>property</th><th>seconds</th></tr>"]
    for sc in ordered[:MAX_ROWS]:
        st = status(sc)
        checks = Counter(c for s in sc["steps"] for c in s.get("checks", ()))
        run = f" (run {sc['run']})" if sc.get("run", 1) > 1 else ""
        rows.append(f'<tr data-row="{"ok" if st in (Status.AGREED, Status.UNCHECKED) else "bad"}">'
                    f"<td><code>{_e(sc['path'])}</code>{run}</td><td>{_e(sc.get('feature', ''))}</td>"
                    f'<td class="{st.value}">{st.value}</td><td class=n>{len(sc["steps"])}</td>'
                    f"<td class=n>{checks['exact']}</td><td class=n>{checks['property']}</td>"
                    f"<td class=n>{sc.get('seconds', 0):.3f}</td></tr>")
    return f"<table class=scenarios>{''.join(rows)}</table>{_more(min(len(ordered), MAX_ROWS), len(ordered), 'scenarios')}"


def run_page(report: dict, title: str = "") -> str:
    """The page of one run's JSON (report.to_json): verdict, metadata, per-feature summary,
    divergences (expandable), errors, skips, reuseport spreads, every scenario."""
    scenarios = report.get("scenarios", [])
    by = defaultdict(list)
    for sc in scenarios:
        by[status(sc)].append(sc)
    title = title or (f"sockharness run: {report.get('kernel_release', '?')}, profile "
                      f"{report.get('profile', '?')}, {report.get('backend', '?')}")
    diverged = by[Status.DIVERGED]
    parts = [_verdict(report), _meta(report), "<h2 id=summary>Summary by feature</h2>", _features(report),
             f"<h2 id=divergences>Divergences ({len(diverged)})</h2>"]
    parts += [_divergence(sc) for sc in diverged[:MAX_DIVERGENCES]] or ["<p>None.</p>"]
    parts.append(_more(min(len(diverged), MAX_DIVERGENCES), len(diverged), "divergences"))
    if by[Status.ERROR]:
        parts.append(f"<h2 id=errors>Could not finish ({len(by[Status.ERROR])})</h2><ul>" + "".join(
            f'<li data-row="bad"><code>{_e(sc["path"])}</code><pre>{_e(sc["error"][:MAX_TEXT])}</pre></li>'
            for sc in by[Status.ERROR][:MAX_ROWS]) + "</ul>")
    parts.append(f"<h2 id=skipped>Skipped ({len(by[Status.SKIPPED])})</h2>")
    parts.append("<ul class=skipped>" + "".join(
        f'<li data-row="bad"><code>{_e(sc["path"])}</code>: <span class=skip-reason>{_e(sc["skipped"])}</span></li>'
        for sc in by[Status.SKIPPED][:MAX_ROWS]) + "</ul>" if by[Status.SKIPPED] else "<p>None.</p>")
    parts.append(_more(min(len(by[Status.SKIPPED]), MAX_ROWS), len(by[Status.SKIPPED]), "skips"))
    parts += ["<h2 id=spread>Reuseport: how picks spread over each group</h2>", _spread_section(scenarios),
              "<h2 id=scenarios>Scenarios</h2>", _scenario_rows(scenarios)]
    return page(title, "".join(parts))


# ---- the matrix page ----------------------------------------------------------------------
# Columns are harness.guests.matrix.Column (duck-typed: the harness core imports nothing of
# harness.guests); a cell's status is read by its value: agree, diverge, skipped, not run.

_MATRIX_ORDER = {"diverge": 0, "not run": 1, "skipped": 2, "agree": 3}


def _feature_of(path: str) -> str:
    return PurePosixPath(path).parent.name or "."


def _cell_status(column, path: str) -> tuple[str, str]:
    cell = column.cells.get(path)
    return ("not run", column.problem) if cell is None else (cell.status.value, cell.detail)


def _divergence_texts(column, paths: set[str]) -> dict[str, str]:
    """The printed divergences of `paths` from the column's corpus JSON, where it has one."""
    if not paths:
        return {}
    try:
        data = column.corpus()
    except (OSError, ValueError):
        return {}
    if not data:
        return {}
    return {sc["path"]: sc.get("divergence") or _reproducer(sc)
            for sc in data.get("scenarios", []) if sc["path"] in paths and status(sc) is Status.DIVERGED}


def _fields(columns: Sequence, paths: Iterable[str]) -> str:
    """The profile fields these scenarios exercise, with the kernels on which they do."""
    wanted = set(paths)
    out = defaultdict(list)
    for c in columns:
        for name, exercised in getattr(c, "exercised", {}).items():
            if wanted & set(exercised):
                out[name].append(c.version)
    return ", ".join(f"{k} ({', '.join(v)})" for k, v in sorted(out.items()))


def _matrix_cell(c, path: str, texts: dict[str, str]) -> str:
    st, detail = _cell_status(c, path)
    cls = st.replace(" ", "-")
    if st == "diverge":
        more = texts.get(path, "")
        return (f'<td class="{cls}"><details class="divergence"><summary>diverge</summary>'
                f'<p>{_e(detail)}</p>{f"<pre class=reproducer>{_e(more[:MAX_TEXT])}</pre>" if more else ""}'
                "</details></td>")
    return f'<td class="{cls}" title="{_e(detail)}">{_e(st)}{f"<br><small>{_e(detail)}</small>" if detail and st != "agree" else ""}</td>'


def _kernels_table(columns: Sequence, paths: Sequence[str]) -> str:
    rows = ["<tr><th>kernel</th><th>release</th><th>profile</th><th>agree</th><th>diverge</th>"
            "<th>skipped</th><th>not run</th><th>time</th><th>profile fields exercised</th><th>notes</th></tr>"]
    for c in columns:
        counts = Counter(_cell_status(c, p)[0] for p in paths)
        fields = ", ".join(f"{k} ({len(v)})" for k, v in getattr(c, "exercised", {}).items())
        notes = [c.problem] if c.problem else []
        if getattr(c, "missing", None):
            notes.append("without module(s) " + ", ".join(c.missing))
        if getattr(c, "kernel_tests", ""):
            notes.append(f"kernel tests: {c.kernel_tests}")
        if getattr(c, "probe", ""):
            notes.append(f"probe: {c.probe}")
        rows.append(f"<tr><td>{_e(c.version)}</td><td>{_e(c.release or '-')}</td><td>{_e(c.profile or '-')}</td>"
                    + "".join((f'<td class="n {s.replace(" ", "-")}">{counts[s]}</td>' if counts[s] else "<td class=n>0</td>")
                              for s in ("agree", "diverge", "skipped", "not run"))
                    + f"<td class=n>{c.seconds:.0f} s</td><td>{_e(fields or '-')}</td>"
                      f"<td>{_e('; '.join(notes))}</td></tr>")
    return f"<table class=kernels>{''.join(rows)}</table>"


def matrix_page(columns: Sequence, title: str) -> str:
    """The scenario x kernel grid: rows with a divergent, not-run or skipped cell first (each
    divergence expandable), then the scenarios agreeing everywhere grouped by feature; each
    row with the profile fields its scenarios exercise."""
    paths = sorted({p for c in columns for p in c.cells})
    # a kernel with no cells at all (it did not boot) says so in the kernels table; its "not
    # run" would otherwise put every row first
    ran = [c for c in columns if c.cells] or list(columns)
    worst = {p: min(_MATRIX_ORDER.get(_cell_status(c, p)[0], 1) for c in ran) for p in paths}
    problems = sorted((p for p in paths if worst[p] < _MATRIX_ORDER["agree"]), key=lambda p: (worst[p], p))
    texts = {c.version: _divergence_texts(c, {p for p in problems if _cell_status(c, p)[0] == "diverge"})
             for c in columns}
    head = "".join(f"<th>{_e(c.version)}<br><small>{_e(c.release)}</small></th>" for c in columns)
    rows = [f"<tr><th>scenario</th>{head}<th>profile fields exercised</th></tr>"]
    for p in problems[:MAX_ROWS]:
        rows.append(f'<tr data-row="bad"><td><code>{_e(p)}</code></td>'
                    + "".join(_matrix_cell(c, p, texts[c.version]) for c in columns)
                    + f"<td>{_e(_fields(columns, [p]))}</td></tr>")
    agreeing = defaultdict(list)
    for p in paths:
        if worst[p] == _MATRIX_ORDER["agree"]:
            agreeing[_feature_of(p)].append(p)
    for feature, group in sorted(agreeing.items()):
        listing = "".join(f"<li><code>{_e(p)}</code></li>" for p in group[:MAX_ROWS])
        rows.append(f'<tr data-row="ok" class="agreeing"><td><details><summary>{_e(feature)}: '
                    f"{len(group)} scenario(s) agree on every kernel</summary><ul>{listing}</ul>"
                    f"{_more(min(len(group), MAX_ROWS), len(group), 'scenarios')}</details></td>"
                    + "".join(f'<td class="agree">agree &times;{len(group)}</td>' if c.cells else
                              f'<td class="not-run" title="{_e(c.problem)}">not run</td>' for c in columns)
                    + f"<td>{_e(_fields(columns, group))}</td></tr>")
    if not paths:
        rows.append(f'<tr><td colspan="{len(columns) + 2}">no scenario ran on any kernel</td></tr>')
    body = (f"<h2>Kernels</h2>{_kernels_table(columns, paths)}<h2>Scenarios by kernel</h2>"
            f"<p>{len(problems)} scenario(s) with a divergent, skipped or not-run cell, first; then "
            f"{len(paths) - len(problems)} agreeing on every kernel, by feature.</p>"
            f"<table class=matrix>{''.join(rows)}</table>"
            f"{_more(min(len(problems), MAX_ROWS), len(problems), 'problem rows')}"
            "<p class=note>Profile fields exercised: the fields where a kernel's profile differs from "
            "the reference and changing the field changes the model's outcome of the scenario, with "
            "the kernels on which it does.</p>")
    return page(title, body)
