"""Read the packaged dated reference data (``tierspayant/reference/rules.json``)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from tierspayant.domain.reference import ReferenceTable, parse_reference

PACKAGED_RULES = ("reference", "rules.json")


@lru_cache(maxsize=1)
def load_default_reference() -> ReferenceTable:
    """The reference table shipped with the package (parsed once per process)."""
    text = resources.files("tierspayant").joinpath(*PACKAGED_RULES).read_text(encoding="utf-8")
    return parse_reference(text)
