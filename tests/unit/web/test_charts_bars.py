"""The caps chart: one named row per structure, its figure written out, bars as a share
of each row's own cap, warning colour at the threshold, names escaped."""

from __future__ import annotations

import re

from tierspayant.web.charts_bars import CapBar, cap_chart


def _widths(svg: str) -> list[float]:
    return [float(w) for w in re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)"', svg)]


def test_bars_are_a_share_of_their_own_cap_with_figures_and_names() -> None:
    svg = str(
        cap_chart(
            "c",
            "Plafonds",
            [
                CapBar("Pharmacie <Lilas>", 360, 400, 320, "Pharmacie <Lilas> (FINESS 1)"),
                CapBar("Cabinet Martin", 54, 60, 48),
                CapBar("Labo", 10, 400, 320),
            ],
        )
    )
    assert "Pharmacie &lt;Lilas&gt;" in svg
    assert "<Lilas>" not in svg
    assert "360 / 400 (90 %)" in svg
    assert "54 / 60 (90 %)" in svg
    assert "10 / 400 (2 %)" in svg
    first, second, third = _widths(svg)
    assert first == second  # 90 % of 400 and 90 % of 60 read alike
    assert third < first / 10
    assert svg.count("chart-warn") == 2  # the two above their warning threshold
    assert "Pharmacie &lt;Lilas&gt; (FINESS 1) : 360 / 400 (90 %)" in svg  # hover title


def test_without_caps_bars_follow_the_largest_value_and_long_names_are_cut() -> None:
    svg = str(cap_chart("c", "Plafonds", [CapBar("A" * 50, 30), CapBar("B", 15)]))
    assert "plafond" not in svg
    first, second = _widths(svg)
    assert second * 2 == first
    assert "A" * 31 + "…" in svg
    assert ">30</text>" in svg


def test_no_rows_says_so() -> None:
    assert "Aucune consultation enregistrée" in str(cap_chart("c", "Plafonds", []))


def test_the_caps_chart_gives_its_rows_in_words_for_screen_readers() -> None:
    svg = str(
        cap_chart(
            "caps",
            "Plafonds",
            [
                CapBar("Pharmacie <Lilas>", 400, 400, 320, "Pharmacie <Lilas> (FINESS 1)"),
                CapBar("Cabinet Martin", 50, 60, 48),
                CapBar("Labo", 10, 400, 320),
            ],
        )
    )
    assert 'aria-describedby="caps-d"' in svg
    found = re.search(r'<desc id="caps-d">(.*?)</desc>', svg)
    assert found is not None
    assert found.group(1) == (
        "Pharmacie &lt;Lilas&gt; (FINESS 1) : 400 / 400 (100 %) (plafond atteint) ; "
        "Cabinet Martin : 50 / 60 (83 %) (seuil d&#39;alerte atteint) ; "
        "Labo : 10 / 400 (2 %)."
    )
    assert "Aucune consultation" in str(cap_chart("vide", "Plafonds", []))
