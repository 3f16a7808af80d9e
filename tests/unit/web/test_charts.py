"""The portals' SVG charts carry their figures in words for screen readers."""

from __future__ import annotations

import re

from tierspayant.web import charts


def _desc(svg: str, chart_id: str) -> str:
    assert f'aria-describedby="{chart_id}-d"' in svg
    found = re.search(rf'<desc id="{chart_id}-d">(.*?)</desc>', svg)
    assert found is not None, svg
    return found.group(1)


def test_a_column_chart_describes_each_bar_with_its_value() -> None:
    svg = charts.column_chart("jours", "Vérifications par jour", [("03/12", 4), ("04/12", 0)])
    assert 'role="img"' in svg
    assert _desc(svg, "jours") == "03/12 : 4 ; 04/12 : 0."


def test_a_bar_chart_says_in_words_what_colour_and_marks_show() -> None:
    bars = [
        charts.Bar("Pharmacie <A>", 12, limit=20, warn=10),
        charts.Bar("Cabinet B", 3, limit=20, warn=10),
    ]
    svg = charts.bar_chart("structures", "Consultations par structure", bars)
    assert _desc(svg, "structures") == (
        "Pharmacie &lt;A&gt; : 12 (seuil d&#39;alerte atteint) (plafond 20) ; "
        "Cabinet B : 3 (plafond 20)."
    )


def test_an_empty_chart_says_so() -> None:
    svg = charts.bar_chart("vide", "Rien", [])
    assert _desc(svg, "vide") == "Aucune donnée."
