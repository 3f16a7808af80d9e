"""Read models of the portals' screens: small, bounded queries, no identity data.

One module per portal or concern (``provider``, ``insurer``, ``backoffice``,
``security``, ``member``, ``directory``). Each function takes a Connection and the
caller's own tenant (insurer, provider, beneficiary) and returns frozen dataclasses; none
returns a NIR, a name or a birth date. The services open the connections
(``services.portal_views``, ``services.member_portal``) and audit what needs it.
"""

from __future__ import annotations

from datetime import UTC, datetime

SCREEN_ROWS = 50  # rows of a list on one screen


def aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back; everything stored is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
