"""The counters an insurer taken over mid-year brought with it (docs/formats/takeover.md).

They are rows of ``benefit_counters`` like those adjudication writes, under the claim id
:data:`IMPORTED_CLAIM_ID` (no claim has it: claim ids start at 1), so that every reader of
the counter history (the counter's calculation, prior authorisations, adjudication) counts
them without knowing where they came from. A beneficiary's imported rows are replaced as a
whole by the next takeover file that names them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Final

from sqlalchemy import Connection, delete, insert, select

from tierspayant.store.claims_tables import benefit_counters

IMPORTED_CLAIM_ID: Final = 0

# (counter key, care date, cents, units): one imported row.
ImportedUse = tuple[str, date, int, int]


def imported_uses(
    conn: Connection, insurer_id: int, beneficiary_ids: Iterable[int]
) -> dict[int, frozenset[ImportedUse]]:
    """The imported rows of each of ``beneficiary_ids`` (an empty set for none)."""
    wanted = sorted(set(beneficiary_ids))
    found: dict[int, set[ImportedUse]] = {b: set() for b in wanted}
    t = benefit_counters.c
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(t.beneficiary_id, t.counter_key, t.care_date, t.used_cents, t.used_units).where(
                t.insurer_id == insurer_id,
                t.claim_id == IMPORTED_CLAIM_ID,
                t.beneficiary_id.in_(wanted[start : start + 500]),
            )
        )
        for r in rows:
            found[int(r.beneficiary_id)].add(
                (str(r.counter_key), r.care_date, int(r.used_cents), int(r.used_units))
            )
    return {b: frozenset(uses) for b, uses in found.items()}


def replace_imported(
    conn: Connection, insurer_id: int, wanted: Mapping[int, frozenset[ImportedUse]]
) -> None:
    """Make each beneficiary's imported rows exactly ``wanted[beneficiary]``."""
    t = benefit_counters.c
    ids = sorted(wanted)
    for start in range(0, len(ids), 500):
        conn.execute(
            delete(benefit_counters).where(
                t.insurer_id == insurer_id,
                t.claim_id == IMPORTED_CLAIM_ID,
                t.beneficiary_id.in_(ids[start : start + 500]),
            )
        )
    rows = [
        {
            "insurer_id": insurer_id,
            "beneficiary_id": beneficiary_id,
            "counter_key": key,
            "care_date": day,
            "claim_id": IMPORTED_CLAIM_ID,
            "used_cents": cents,
            "used_units": units,
        }
        for beneficiary_id in ids
        for key, day, cents, units in sorted(wanted[beneficiary_id])
    ]
    if rows:
        conn.execute(insert(benefit_counters), rows)
