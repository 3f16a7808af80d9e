"""The runbook's links hold: every ``(#anchor)`` of docs/operations.md, and every
``operations.md#anchor`` of the other docs, names one of its headings."""

from __future__ import annotations

import re

from tests.unit.ops.support import OPERATIONS_DOC, ROOT, anchors


def test_every_link_into_the_runbook_names_one_of_its_sections() -> None:
    known = anchors(OPERATIONS_DOC.read_text(encoding="utf-8"))
    internal = re.findall(r"\]\(#([^)]+)\)", OPERATIONS_DOC.read_text(encoding="utf-8"))
    assert internal
    for anchor in internal:
        assert anchor in known, f"operations.md links to #{anchor}, which is no heading"
    for path in [*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.md")]:
        for anchor in re.findall(r"operations\.md#([\w-]+)", path.read_text(encoding="utf-8")):
            assert anchor in known, f"{path.name} links to operations.md#{anchor}"
