"""Charts drawn on the server as SVG: no script, no chart library, readable without CSS.

Each chart is an ``<svg role="img">`` with a title and a description (its figures in
words, :func:`describe`); the pages also show the same figures in a table for copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
BAR_GAP = 4
LABEL_WIDTH = 150
NO_DATA = '<text x="8" y="24" class="chart-note">Aucune donnée</text>'


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    limit: int | None = None  # drawn as a mark (e.g. a daily cap)
    warn: int | None = None  # above it, the bar is drawn in the warning colour


def describe(bars: Sequence[tuple[str, int] | Bar]) -> str:
    """The chart's figures in words, its ``<desc>`` (read by screen readers: an
    ``role="img"`` hides the drawing's texts): each label with its value, and the marks
    the drawing shows by colour or position (alert threshold reached, cap)."""
    if not bars:
        return "Aucune donnée."
    parts = []
    for bar in bars:
        if isinstance(bar, Bar):
            text = f"{bar.label} : {bar.value}"
            if bar.warn is not None and bar.value >= bar.warn:
                text += " (seuil d'alerte atteint)"
            if bar.limit:
                text += f" (plafond {bar.limit})"
        else:
            text = f"{bar[0]} : {bar[1]}"
        parts.append(text)
    return " ; ".join(parts) + "."


def _frame(chart_id: str, title: str, height: int, body: list[str], desc: str = "") -> Markup:
    described = f' aria-describedby="{chart_id}-d"' if desc else ""
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" aria-labelledby="{chart_id}-t"{described}>'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
    )
    if desc:
        head += f'<desc id="{chart_id}-d">{escape(desc)}</desc>'
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every value escaped above


def column_chart(chart_id: str, title: str, bars: Sequence[tuple[str, int]]) -> Markup:
    """Vertical bars, one per label (days), with the value above each bar."""
    height, top, bottom = 220, 20, 30
    if not bars:
        return _frame(chart_id, title, 40, [NO_DATA], describe(bars))
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
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{bar_h:.1f}" '
            'class="chart-bar"/>'
        )
        centre = x + width / 2
        body.append(
            f'<text x="{centre:.1f}" y="{y - 4:.1f}" class="chart-value">{value}</text>'
            f'<text x="{centre:.1f}" y="{height - bottom + 16}" class="chart-label">'
            f"{escape(label)}</text>"
        )
    return _frame(chart_id, title, height, body, describe(bars))


def bar_chart(chart_id: str, title: str, bars: Sequence[Bar]) -> Markup:
    """Horizontal bars with labels on the left; a limit drawn as a vertical mark."""
    row = 26
    height = max(len(bars), 1) * row + 10
    if not bars:
        return _frame(chart_id, title, 40, [NO_DATA], describe(bars))
    peak = max(max(max(b.value, b.limit or 0) for b in bars), 1)
    span = WIDTH - LABEL_WIDTH - 60
    body: list[str] = []
    for index, bar in enumerate(bars):
        y = 5 + index * row
        length = span * bar.value / peak
        over = bar.warn is not None and bar.value >= bar.warn
        body.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 16}" class="chart-label chart-left">'
            f"{escape(bar.label)}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{row - 8}" '
            f'class="chart-bar{" chart-warn" if over else ""}"/>'
            f'<text x="{LABEL_WIDTH + length + 4:.1f}" y="{y + 14}" class="chart-value-left">'
            f"{bar.value}</text>"
        )
        if bar.limit:
            x = LABEL_WIDTH + span * bar.limit / peak
            body.append(
                f'<line x1="{x:.1f}" y1="{y - 2}" x2="{x:.1f}" y2="{y + row - 6}" '
                'class="chart-limit"/>'
            )
    return _frame(chart_id, title, height, body, describe(bars))
