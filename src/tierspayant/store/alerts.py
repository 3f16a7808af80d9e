"""Security alerts raised by the guard, as the security console lists and acknowledges them.

The guard's daily history of each structure (``guard_daily``) is read through
:class:`GuardDailyHistory`, named here so that services reach it without a table module.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from tierspayant.store.guard_figures import GuardDailyHistory
from tierspayant.store.security_tables import security_alerts

__all__ = ["GuardDailyHistory", "acknowledge", "alert_exists", "insert_alert"]


def insert_alert(
    conn: Connection,
    *,
    at: datetime,
    level: str,
    code: str,
    principal: str | None,
    structure: str | None,
    insurer: str | None,
    message: str,
    figures: str,
) -> int:
    """Record one alert (``figures``: a JSON object); its id."""
    result = conn.execute(
        security_alerts.insert().values(
            at=at,
            level=level,
            code=code,
            principal=principal,
            structure=structure,
            insurer=insurer,
            message=message,
            figures=figures,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def acknowledge(conn: Connection, alert_id: int, at: datetime, by: str) -> bool:
    """Mark an alert handled; False if there is no such alert or it was already handled."""
    changed = conn.execute(
        update(security_alerts)
        .where(security_alerts.c.id == alert_id, security_alerts.c.acknowledged_at.is_(None))
        .values(acknowledged_at=at, acknowledged_by=by)
    ).rowcount
    return bool(changed)


def alert_exists(conn: Connection, alert_id: int) -> bool:
    """Whether an alert with this id was ever recorded."""
    return (
        conn.execute(select(security_alerts.c.id).where(security_alerts.c.id == alert_id)).first()
        is not None
    )
