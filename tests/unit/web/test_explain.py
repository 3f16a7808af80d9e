"""The calculation's explanation in French: the ceilings the engine notes, translated."""

from __future__ import annotations

import inspect

from tierspayant.domain.pricing.ceilings import apply_ceilings
from tierspayant.web import explain


def test_the_engines_ceiling_notes_read_in_french() -> None:
    notes = [
        "capped by annual ceiling optique 150,00 € (40,00 € left)",
        "capped by 24-month ceiling lunettes of 1 per period (0 left)",
        "base 30,00 € x 70 %",  # any other note: English, not shown
    ]
    assert explain.ceilings(notes) == [
        "Plafond de garantie atteint : 150,00 € par année civile ; il restait 40,00 € sur ce "
        "plafond, la part complémentaire en est limitée.",
        "Plafond de garantie atteint : 1 acte(s) sur 24 mois glissants ; il en restait 0.",
    ]


def test_the_patterns_follow_the_engine() -> None:
    # The note the engine writes today is the one the pattern reads (a renamed note would
    # silently drop the ceiling from the page).
    source = inspect.getsource(apply_ceilings)
    assert "capped by {label} {eur(ceiling.amount_cents)} ({eur(left)} left)" in source
    assert "capped by {label} of {ceiling.count} per period ({units} left)" in source
    assert 'label = f"{PERIOD_LABELS[ceiling.period]} ceiling {ceiling.counter}"' in source
