"""The whole schema: importing this module registers every table on ``metadata``.

Migrations (``store/migrations/env.py``) and the schema agreement test read it; a new
table module must be imported here.
"""

from __future__ import annotations

from tierspayant.store import (  # noqa: F401  (each import registers its tables)
    accounts_tables,
    bank_tables,
    cards_tables,
    claims_tables,
    containment_tables,
    disputes_tables,
    incident_tables,
    ledger_tables,
    operations_tables,
    security_tables,
)
from tierspayant.store.tables import metadata

__all__ = ["metadata"]
