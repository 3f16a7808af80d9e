"""Finding valid NIRs written anywhere in a text (exports, pages, logs, dumps)."""

from __future__ import annotations

import re
from typing import Final

from tierspayant.domain.identifiers.nir import _nir_problem

# Separators a formatted NIR may carry between its groups ("1 85 05 75 123 456 78").
_SEP: Final = r"[ \u00a0\u202f.\-]?"
_NIR_SHAPE: Final = (
    rf"[1-478]{_SEP}[0-9]{{2}}{_SEP}[0-9]{{2}}{_SEP}"
    # Metropolitan (2-character département, 3-digit commune) or overseas (3 + 2).
    rf"(?:(?:[0-9]{{2}}|2[ABab]){_SEP}[0-9]{{3}}|[0-9]{{3}}{_SEP}[0-9]{{2}})"
    rf"{_SEP}[0-9]{{3}}{_SEP}[0-9]{{2}}"
)
# A lookahead matches at every position, so overlapping candidates are all tried: a NIR
# glued to other digits is still found.
_NIR_ANYWHERE: Final = re.compile(rf"(?=({_NIR_SHAPE}))")
_NIR_ISOLATED: Final = re.compile(rf"(?<![0-9A-Za-z])(?=({_NIR_SHAPE})(?![0-9A-Za-z]))")
_NIR_SEPARATORS: Final = re.compile(r"[ \u00a0\u202f.\-]")


def find_valid_nirs(text: str, *, isolated: bool = False) -> list[str]:
    """Every valid NIR in ``text``, compact and upper case, in order of position.

    Finds NIRs written compact or with separators (space, non-breaking space, dot, dash)
    between their groups. By default a NIR is found even when glued to letters or digits
    (as in a database page, where columns follow each other without separators); every
    15-digit window is then tried, and about one random window in 200 passes all the
    checks, so long runs of digits give false positives. ``isolated=True`` only accepts
    NIRs not touching a letter or digit, which suits hex or base64 text. The same NIR
    found at several places is listed each time. Decode bytes as latin-1 to scan them.
    """
    pattern = _NIR_ISOLATED if isolated else _NIR_ANYWHERE
    found: list[str] = []
    for match in pattern.finditer(text):
        candidate = _NIR_SEPARATORS.sub("", match.group(1)).upper()
        if _nir_problem(candidate) is None:
            found.append(candidate)
    return found
