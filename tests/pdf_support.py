"""Reading what a generated PDF says, without a PDF library: the content streams of the
file, inflated when they are Flate-compressed, as Latin-1 text (the core fonts' encoding).

Enough for PDFs written by fpdf2 with core fonts, whose text operators carry the strings
as written (``(F00000012) Tj``); not a general PDF reader.
"""

from __future__ import annotations

import re
import zlib

_STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.DOTALL)


def pdf_streams(document: bytes) -> list[bytes]:
    """Every stream of the document, inflated when it is compressed."""
    assert document.startswith(b"%PDF-"), document[:16]
    found = []
    for raw in _STREAM.findall(document):
        try:
            found.append(zlib.decompress(raw))
        except zlib.error:
            found.append(raw)
    return found


def pdf_text(document: bytes) -> str:
    """The content of every stream, joined, as Latin-1 text."""
    return "\n".join(stream.decode("latin-1") for stream in pdf_streams(document))


def pdf_pages(document: bytes) -> int:
    return len(re.findall(rb"/Type /Page\b", document))
