"""How the engine writes amounts and rates in the rules it explains to the provider."""

from __future__ import annotations

from tierspayant.domain.money import format_euros

# What becomes of the participation forfaitaire and the franchises the AMO deducted.
RESPONSABLE = "not covered: contrat responsable"
COVERED = "covered by the contract"
NOT_COVERED = "not covered by the contract"

_PCT_CACHE = {bp: f"{bp // 100} %" for bp in range(0, 100_001, 500)}


def eur(cents: int) -> str:
    """``cents`` in euros, French style (``12,50 €``)."""
    # The common case without thousands separators, fast: this runs several times a line.
    if 0 <= cents < 100_000:
        return f"{cents // 100},{cents % 100:02d} €"
    return format_euros(cents)


def pct(bp: int) -> str:
    """A rate in basis points as a percentage (``70 %``, ``12,5 %``)."""
    text = _PCT_CACHE.get(bp)
    if text is not None:
        return text
    whole, part = divmod(bp, 100)
    if part == 0:
        return f"{whole} %"
    return f"{whole},{part:02d}".rstrip("0") + " %"
