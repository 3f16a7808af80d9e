"""Charts drawn on the server as SVG: no script, no chart library, readable without CSS.

Each chart is an ``<svg role="img">`` with a title and a description; the pages also show
the same figures in a table for screen readers and for copying. A bar may carry a link
(``href``): the bar, its label and its value are then one ``<a>`` of the SVG, so that a
chart leads to the lines it counts (the figures table carries the same links).

Long labels are wrapped on words over up to three lines (the row grows to hold them), and
a label still too long ends with an ellipsis; the bar's ``<title>`` keeps the full text.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
BAR_GAP = 4
LABEL_WIDTH = 230
LABEL_CHARS = 36  # what LABEL_WIDTH holds at the charts' 11 px font
LABEL_LINES = 3
LINE_HEIGHT = 13
NO_DATA = '<text x="8" y="24" class="chart-note">Aucune donnée</text>'


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    limit: int | None = None  # drawn as a mark (e.g. a daily cap)
    warn: int | None = None  # above it, the bar is drawn in the warning colour
    href: str | None = None  # where the bar leads (its lines), if anywhere


def wrap_label(label: str, width: int = LABEL_CHARS, lines: int = LABEL_LINES) -> list[str]:
    """``label`` cut on words into at most ``lines`` lines of ``width`` characters; the
    last line ends with an ellipsis when text had to be left out."""
    wrapped = textwrap.wrap(label, width) or [""]
    if len(wrapped) <= lines:
        return wrapped
    kept = wrapped[:lines]
    kept[-1] = textwrap.shorten(kept[-1] + " " + wrapped[lines], width, placeholder=" …")
    if not kept[-1].endswith("…"):
        kept[-1] = kept[-1][: width - 2].rstrip() + " …"
    return kept


def _linked(href: str | None, title: str, body: str) -> str:
    """``body`` as a link to ``href`` (with ``title`` as its accessible name), or as is."""
    if href is None:
        return body
    return f'<a href="{escape(href)}" class="chart-link"><title>{escape(title)}</title>{body}</a>'


def _frame(chart_id: str, title: str, height: int, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" aria-labelledby="{chart_id}-t">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every value escaped above


def column_chart(
    chart_id: str,
    title: str,
    bars: Sequence[tuple[str, int]],
    links: Sequence[str | None] | None = None,
) -> Markup:
    """Vertical bars, one per label (days), with the value above each bar; ``links``
    gives each bar's link (same order as ``bars``), if any."""
    height, top, bottom = 220, 20, 30
    if not bars:
        return _frame(chart_id, title, 40, [NO_DATA])
    peak = max(max(v for _, v in bars), 1)
    slot = (WIDTH - 20) / len(bars)
    body: list[str] = [
        f'<line x1="10" y1="{height - bottom}" x2="{WIDTH - 10}" y2="{height - bottom}" '
        'class="chart-axis"/>'
    ]
    for index, (label, value) in enumerate(bars):
        bar_h = (height - top - bottom) * value / peak
        x = 10 + index * slot + BAR_GAP / 2
        y = height - bottom - bar_h
        width = max(slot - BAR_GAP, 1)
        centre = x + width / 2
        drawn = (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{bar_h:.1f}" '
            'class="chart-bar"/>'
            f'<text x="{centre:.1f}" y="{y - 4:.1f}" class="chart-value">{value}</text>'
            f'<text x="{centre:.1f}" y="{height - bottom + 16}" class="chart-label">'
            f"{escape(label)}</text>"
        )
        href = links[index] if links is not None and index < len(links) else None
        body.append(_linked(href, f"{label} : {value}", drawn))
    return _frame(chart_id, title, height, body)


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar]) -> Markup:
    """Horizontal bars with labels on the left (wrapped, see :func:`wrap_label`); a limit
    drawn as a vertical mark."""
    if not bars:
        return _frame(chart_id, title, 40, [NO_DATA])
    peak = max(max(max(b.value, b.limit or 0) for b in bars), 1)
    span = WIDTH - LABEL_WIDTH - 60
    body: list[str] = []
    y = 5
    for bar in bars:
        lines = wrap_label(bar.label)
        row = max(26, len(lines) * LINE_HEIGHT + 8)
        length = span * bar.value / peak
        over = bar.warn is not None and bar.value >= bar.warn
        bar_y = y + (row - 18) / 2
        first = y + 16 if len(lines) == 1 else y + 4 + LINE_HEIGHT - 2
        spans = "".join(
            f'<tspan x="{LABEL_WIDTH - 6}" y="{first + n * LINE_HEIGHT:.0f}">{escape(text)}</tspan>'
            for n, text in enumerate(lines)
        )
        drawn = (
            f'<text class="chart-label chart-left">{spans}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{bar_y:.1f}" width="{length:.1f}" height="18" '
            f'class="chart-bar{" chart-warn" if over else ""}"/>'
            f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{bar_y + 14:.1f}" '
            f'class="chart-value-left">{bar.value}</text>'
        )
        body.append(_linked(bar.href, f"{bar.label} : {bar.value}", drawn))
        if bar.limit:
            x = LABEL_WIDTH + span * bar.limit / peak
            body.append(
                f'<line x1="{x:.1f}" y1="{bar_y - 2:.1f}" x2="{x:.1f}" y2="{bar_y + 20:.1f}" '
                'class="chart-limit"/>'
            )
        y += row
    return _frame(chart_id, title, y + 5, body)
