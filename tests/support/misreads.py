"""Misreads of a card's 2D code, as a barcode reader makes them (hypothesis strategies).

A reader is a keyboard: configured for QWERTY on an AZERTY computer (or the other way
round) it types the key *positions* of the characters it read, which the computer turns
into other characters; a partial scan is cut short; a reader may add a character; a
field may receive anything. Every text drawn here fails to parse
(:func:`tierspayant.security.cardsig.peek` refuses it): these are misreads, not forgeries.
"""

from __future__ import annotations

from hypothesis import assume
from hypothesis import strategies as st

from tierspayant.security import cardsig

# What a QWERTY-configured reader types on an AZERTY computer, for each base45 character:
# the same key with the same shift state. ``1`` → ``&`` and ``:`` → ``M``: "TP1:" → "TP&M".
QWERTY_ON_AZERTY = str.maketrans(
    {
        "A": "Q",
        "Q": "A",
        "Z": "W",
        "W": "Z",
        "M": "?",
        "1": "&",
        "2": "é",
        "3": '"',
        "4": "'",
        "5": "(",
        "6": "-",
        "7": "è",
        "8": "_",
        "9": "ç",
        "0": "à",
        ":": "M",
        "$": "4",
        "%": "5",
        "*": "8",
        "-": ")",
        ".": ":",
        "/": "!",
    }
)
# And an AZERTY-configured reader on a QWERTY computer.
AZERTY_ON_QWERTY = str.maketrans(
    {
        "A": "Q",
        "Q": "A",
        "Z": "W",
        "W": "Z",
        "M": ":",
        "1": "!",
        "2": "@",
        "3": "#",
        "4": "$",
        "5": "%",
        "6": "^",
        "7": "&",
        "8": "*",
        "9": "(",
        "0": ")",
        ":": ".",
        ".": "<",
        "$": "]",
        "%": '"',
        "*": "\\",
        "-": "6",
        "/": "?",
    }
)


def parses(text: str) -> bool:
    """Whether the text is a well-formed card code (signature not checked)."""
    try:
        cardsig.peek(text)
    except cardsig.CardProofError:
        return False
    return True


@st.composite
def misread_of(draw: st.DrawFn, payload: str) -> str:
    """A misread of ``payload`` (the ``TP1:`` text of a real card): never empty, never
    parsing."""
    kind = draw(st.sampled_from(("truncated", "layout", "partial_layout", "extra", "garbage")))
    if kind == "truncated":
        text = payload[: draw(st.integers(1, len(payload) - 1))]
    elif kind == "layout":
        text = payload.translate(draw(st.sampled_from((QWERTY_ON_AZERTY, AZERTY_ON_QWERTY))))
    elif kind == "partial_layout":
        # The layout switched mid-scan (a reader's buffer flushed late): a swapped tail.
        cut = draw(st.integers(0, len(payload) - 1))
        table = draw(st.sampled_from((QWERTY_ON_AZERTY, AZERTY_ON_QWERTY)))
        text = payload[:cut] + payload[cut:].translate(table)
    elif kind == "extra":
        text = payload + draw(st.text(alphabet="0123456789ABC\t ", min_size=1, max_size=3))
    else:
        text = draw(
            st.text(
                alphabet=st.characters(blacklist_categories=("Cs", "Cc")),
                min_size=1,
                max_size=120,
            )
        )
    assume(text.strip("\r\n") and not parses(text))
    return text


def layout_swaps(payload: str) -> list[str]:
    """The two whole-payload keyboard swaps of ``payload``."""
    return [payload.translate(QWERTY_ON_AZERTY), payload.translate(AZERTY_ON_QWERTY)]
