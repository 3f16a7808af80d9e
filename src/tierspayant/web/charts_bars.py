"""A bar chart of figures against their limits, for the security console's caps.

Kept apart from ``web.charts`` (the portals' general charts): each bar is one named row,
its length the share of its own cap used (so a pharmacy at 90 % of 400 and a doctor at
90 % of 60 read alike), with the figure written at its end (« 362 / 400 (90 %) ») and the
warning threshold drawn as a mark. Rows come sorted by the caller; a page shows the same
figures in a table beside the chart. SVG drawn on the server, no script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
ROW = 30
LABEL_WIDTH = 260
VALUE_WIDTH = 150
LABEL_CHARS = 32
SCALE_TOP = 120  # percent of the cap the axis reaches; longer bars are clipped there


@dataclass(frozen=True, slots=True)
class CapBar:
    """One row: who, how many, and the thresholds (0: none)."""

    label: str
    value: int
    cap: int = 0
    soft: int = 0
    title: str = ""  # the full text, shown on hover (the label may be cut)


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1].rstrip() + "…"


def _figure(bar: CapBar) -> str:
    if bar.cap <= 0:
        return f"{bar.value}"
    return f"{bar.value} / {bar.cap} ({bar.value * 100 // bar.cap} %)"


def cap_chart(chart_id: str, title: str, bars: Sequence[CapBar]) -> Markup:
    """Horizontal bars, one per row, as a share of each row's cap (or of the largest
    value when no row has a cap), labelled with names on the left and figures on the
    right; a dashed mark at the warning threshold, a solid one at the cap."""
    capped = any(b.cap > 0 for b in bars)
    height = 34 + max(len(bars), 1) * ROW
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    body: list[str] = []
    if not bars:
        body.append('<text x="8" y="24" class="chart-note">Aucune consultation enregistrée</text>')
        return _frame(chart_id, title, 40, body, "Aucune consultation enregistrée.")
    peak = max(max(b.value for b in bars), 1)

    def share(value: int, bar: CapBar) -> float:
        if capped:
            percent = value * 100 / bar.cap if bar.cap > 0 else 0.0
            return span * min(percent, SCALE_TOP) / SCALE_TOP
        return span * value / peak

    if capped:
        x_cap = LABEL_WIDTH + span * 100 / SCALE_TOP
        body.append(
            f'<text x="{x_cap:.1f}" y="12" class="chart-label">plafond</text>'
            f'<line x1="{x_cap:.1f}" y1="16" x2="{x_cap:.1f}" y2="{height - 4}" '
            'class="chart-limit"/>'
        )
    for index, bar in enumerate(bars):
        y = 22 + index * ROW
        length = share(bar.value, bar)
        warn = (bar.soft > 0 and bar.value >= bar.soft) or (bar.cap > 0 and bar.value >= bar.cap)
        body.append(
            f"<g><title>{escape(bar.title or bar.label)} : {escape(_figure(bar))}</title>"
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 15}" class="chart-label chart-left">'
            f"{escape(_short(bar.label))}</text>"
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{max(length, 1):.1f}" height="{ROW - 10}" '
            f'class="chart-bar{" chart-warn" if warn else ""}"/>'
            f'<text x="{LABEL_WIDTH + span + 8}" y="{y + 15}" class="chart-value-left">'
            f"{escape(_figure(bar))}</text></g>"
        )
        if capped and bar.soft > 0 and bar.cap > 0:
            x = LABEL_WIDTH + share(bar.soft, bar)
            body.append(
                f'<line x1="{x:.1f}" y1="{y - 2}" x2="{x:.1f}" y2="{y + ROW - 8}" '
                'class="chart-soft"/>'
            )
    return _frame(chart_id, title, height, body, describe(bars))


def describe(bars: Sequence[CapBar]) -> str:
    """The rows in words, the chart's ``<desc>`` (a ``role="img"`` hides its texts from
    screen readers): each full name with its figure, and the warning the colour shows."""
    parts = []
    for bar in bars:
        text = f"{bar.title or bar.label} : {_figure(bar)}"
        if bar.cap > 0 and bar.value >= bar.cap:
            text += " (plafond atteint)"
        elif bar.soft > 0 and bar.value >= bar.soft:
            text += " (seuil d'alerte atteint)"
        parts.append(text)
    return " ; ".join(parts) + "."


def _frame(chart_id: str, title: str, height: int, body: list[str], desc: str) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-caps" role="img" '
        f'viewBox="0 0 {WIDTH} {height}" aria-labelledby="{chart_id}-t" '
        f'aria-describedby="{chart_id}-d">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
        f'<desc id="{chart_id}-d">{escape(desc)}</desc>'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - every value escaped above
