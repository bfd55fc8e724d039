"""Inline SVG bar charts for the HTML reports: drawn and escaped here, without a plotting
library (it would be the page's largest part, and a dependency, for a few rows of bars)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

from harness.report import visible

ROW = 18  # pixels per bar
GAP = 4
TEXT = 'font-family="sans-serif" font-size="12"'


def _e(text: object) -> str:
    return html.escape(visible(text))


@dataclass(frozen=True)
class Bar:
    """One horizontal bar; `mark` is a second value drawn as a tick across it (a prediction)."""

    label: str
    value: float
    colour: str
    mark: float | None = None
    title: str = ""  # the tooltip
    text: str = ""  # written after the bar (default: the value)


@dataclass(frozen=True)
class Line:
    """A vertical rule across every bar at `value` (a target)."""

    label: str
    value: float


def _number(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 or v == int(v) else f"{v:.1f}"


def hbars(bars: Sequence[Bar], *, title: str, css_class: str = "chart", width: int = 640,
          line: Line | None = None, legend: Sequence[tuple[str, str]] = ()) -> str:
    """Bars left to right from a common zero, scaled to the largest value, mark or line."""
    label_width = min(12 + 7 * max((len(b.label) for b in bars), default=0), width // 3)
    plot = width - label_width - 90
    top = max([b.value for b in bars] + [b.mark or 0 for b in bars] + [line.value if line else 0, 1e-9])
    y0 = 22 if line else 4
    height = y0 + len(bars) * (ROW + GAP) + (22 if legend else 4)
    out = [f'<svg class="{_e(css_class)}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(title)}">',
           f"<title>{_e(title)}</title>"]
    for i, b in enumerate(bars):
        y = y0 + i * (ROW + GAP)
        w = max(plot * b.value / top, 1 if b.value else 0)
        tip = f"<title>{_e(b.title)}</title>" if b.title else ""
        out.append(f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end" {TEXT}>{_e(b.label)}</text>')
        out.append(f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{ROW}" fill="{_e(b.colour)}">{tip}</rect>')
        end = label_width + w
        if b.mark is not None:
            x = label_width + plot * b.mark / top
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + ROW + 2}" stroke="#000" '
                       f'stroke-width="2">{tip}</line>')
            end = max(end, x)
        out.append(f'<text x="{end + 5:.1f}" y="{y + 13}" {TEXT}>{_e(b.text or _number(b.value))}</text>')
    if line is not None:
        x = label_width + plot * line.value / top
        bottom = y0 + len(bars) * (ROW + GAP)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="14" y2="{bottom}" stroke="#555" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x:.1f}" y="11" text-anchor="middle" {TEXT}>{_e(line.label)}</text>')
    x = label_width
    for colour, name in legend:
        y = height - 14
        out.append(f'<rect x="{x}" y="{y}" width="12" height="10" fill="{_e(colour)}"/>')
        out.append(f'<text x="{x + 16}" y="{y + 9}" {TEXT}>{_e(name)}</text>')
        x += 30 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def stacked(parts: Sequence[tuple[float, str, str]], *, width: int = 160, height: int = 12) -> str:
    """One bar split into (value, colour, name) parts; a part that is not zero is at least
    2 px wide, so one divergence among hundreds still shows."""
    total = sum(v for v, _, _ in parts) or 1
    shown = [(max(width * v / total, 2), c, n, v) for v, c, n in parts if v]
    scale = width / (sum(w for w, *_ in shown) or 1)
    out = [f'<svg class="bar" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" aria-label="{_e(", ".join(f"{v:g} {n}" for _, _, n, v in shown))}">']
    x = 0.0
    for w, colour, name, v in shown:
        out.append(f'<rect x="{x:.1f}" y="0" width="{w * scale:.1f}" height="{height}" fill="{_e(colour)}">'
                   f"<title>{_e(f'{v:g} {name}')}</title></rect>")
        x += w * scale
    out.append("</svg>")
    return "".join(out)
