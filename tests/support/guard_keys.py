"""The keys and limits of the guard's bundled lookup operations, for tests that call a
counter store directly (the guard builds its own in ``core.Guard._lookup_keys``)."""

from __future__ import annotations

from typing import Any

from tierspayant.security.guard import LookupKeys, StoreLimits


def lookup_keys(
    principal: str = "p", structure: str = "s", day: str = "d", **changes: Any
) -> LookupKeys:
    """The keys of one principal's lookups for one structure on one day, named as the
    guard names them (without once keys); ``changes`` replaces some."""
    scopes = (f"p:{principal}", f"s:{structure}")
    keys = LookupKeys.named(principal, structure, day, "judged", scopes, "pharmacy")
    return keys._replace(**changes)


def store_limits(**changes: Any) -> StoreLimits:
    """Limits no test reaches unless it sets them (``changes``); times in ms, times to
    live in seconds."""
    limits = StoreLimits(
        window_limits=(1_000, 1_000, 1_000),
        window_ms=60_000,
        pace_keep=10,
        pace_ttl=3600,
        grace_ms=3_600_000,
        unbilled_window_ms=7_200_000,
        slack_ms=1_000,
        overdue_limit=1_000,
        hold_ms=30_000,
        unbilled_ttl=3600,
        day_ttl=3600,
        outcomes_keep=10,
        outcomes_ttl=3600,
        dates_free=2,
        dates_ttl=3600,
        check_ttl=3600,
        min_looked=1,
    )
    return limits._replace(**changes)
