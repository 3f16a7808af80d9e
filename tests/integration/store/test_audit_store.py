"""The audit log on a real database: append-only for the application, and any tampering
done behind its back (triggers dropped by someone with the owner's rights) is located."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DatabaseError

from tierspayant.app.platform import Platform
from tierspayant.services import audit_log
from tierspayant.store import audit
from tierspayant.store.tables import audit_events


def _append(platform: Platform, count: int) -> None:
    with platform.engine.begin() as conn:
        for n in range(count):
            audit.append(
                conn,
                at=platform.now(),
                actor=f"provider_client:test-{n % 3}",
                action="rights.check",
                decision="allow",
                structure="750012344",
                purpose="rights",
                subject=f"{n:064x}",
                detail={"n": n},
            )


def _disable_protection(platform: Platform) -> None:
    """What an attacker with the table owner's rights could do: remove the triggers."""
    with platform.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text("DROP TRIGGER audit_events_no_delete"))


def test_given_events_then_the_chain_verifies(platform: Platform) -> None:
    _append(platform, 25)
    report = audit_log.verify(platform)
    assert report.ok
    assert report.checked >= 25


@pytest.mark.parametrize(
    "statement",
    [
        update(audit_events).where(audit_events.c.seq == 3).values(decision="deny"),
        delete(audit_events).where(audit_events.c.seq == 3),
        delete(audit_events),
    ],
    ids=["update", "delete-one", "delete-all"],
)
def test_given_the_application_connection_then_audit_rows_cannot_change(
    platform: Platform, statement: object
) -> None:
    _append(platform, 5)
    with pytest.raises(DatabaseError), platform.engine.begin() as conn:
        conn.execute(statement)  # type: ignore[call-overload]
    with platform.engine.connect() as conn:
        assert audit.count_events(conn) >= 5
    assert audit_log.verify(platform).ok


def test_given_truncate_on_postgresql_then_it_is_refused(platform: Platform) -> None:
    if platform.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists on PostgreSQL only")
    _append(platform, 3)
    with pytest.raises(DatabaseError), platform.engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_events"))


def _seq_of_nth(platform: Platform, n: int) -> int:
    with platform.engine.connect() as conn:
        seqs = [e.seq for e in audit.iter_events(conn)]
    return seqs[n]


def test_given_an_edited_event_then_verify_names_its_position(platform: Platform) -> None:
    _append(platform, 12)
    target = _seq_of_nth(platform, 7)
    _disable_protection(platform)
    with platform.engine.begin() as conn:
        conn.execute(
            update(audit_events).where(audit_events.c.seq == target).values(decision="deny")
        )
    report = audit_log.verify(platform)
    assert not report.ok
    assert report.first_broken_seq == target


def test_given_a_deleted_event_then_verify_names_the_gap(platform: Platform) -> None:
    _append(platform, 12)
    target = _seq_of_nth(platform, 5)
    _disable_protection(platform)
    with platform.engine.begin() as conn:
        conn.execute(delete(audit_events).where(audit_events.c.seq == target))
    report = audit_log.verify(platform)
    assert not report.ok
    assert report.first_broken_seq is not None
    assert target <= report.first_broken_seq <= target + 1


def test_given_concurrent_writers_then_every_append_gets_its_own_position(
    platform: Platform,
) -> None:
    import threading

    errors: list[BaseException] = []

    def work(n: int) -> None:
        for _ in range(40):
            try:
                with platform.engine.begin() as conn:
                    audit.append(
                        conn, at=platform.now(), actor=f"t{n}", action="x", decision="allow"
                    )
            except BaseException as exc:  # noqa: BLE001  (collected and asserted below)
                errors.append(exc)

    with platform.engine.connect() as conn:
        before = audit.count_events(conn)
    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with platform.engine.connect() as conn:
        events = list(audit.iter_events(conn))
    # (On PostgreSQL earlier tests of this module tampered with the shared log: look only
    # at what this test appended.)
    mine = events[before:]
    assert len(mine) == 240
    assert [e.seq for e in mine] == list(range(mine[0].seq, mine[0].seq + 240))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(mine))


def test_given_varied_events_then_every_reading_path_gives_the_same_events(
    platform: Platform,
) -> None:
    """The raw-driver pages (PostgreSQL) build the events the portable path builds."""
    details: list[dict[str, str | int | bool | None]] = [
        {},
        {"n": 1, "ok": True, "none": None},
        {"name": "Élodie « test »", "emoji": "\u2603"},
        {"n": 1, "ok": True, "none": None},  # the same text again: parsed once, shared
    ]
    with platform.engine.begin() as conn:
        for n in range(11):
            audit.append(
                conn,
                at=platform.now(),
                actor=f"actor-{n}",
                action="rights.check",
                decision="allow",
                structure=None if n % 2 else "750012344",
                subject=None if n % 3 else f"{n:032x}",
                insurer="77665544",
                detail=details[n % len(details)],
            )
    with platform.engine.connect() as conn:
        portable = list(audit._iter_events_core(conn, 0, 4))
        chosen = list(audit.iter_events(conn, batch=4))
        tail = list(audit.iter_events(conn, after=5, batch=3))
    assert len(portable) >= 11
    assert chosen == portable
    assert [e.canonical() for e in chosen] == [e.canonical() for e in portable]
    assert tail == [e for e in portable if e.seq > 5]


def test_a_paris_day_window_selects_the_same_events_on_every_engine(platform: Platform) -> None:
    # Given reads at 23:30 and 00:15 UTC, which are 00:30 and 01:15 on 7 December in Paris
    paris = ZoneInfo("Europe/Paris")
    late = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
    with platform.engine.begin() as conn:
        for minutes in (0, 45):
            audit.append(
                conn,
                at=late + timedelta(minutes=minutes),
                actor="provider:751234567/client:a",
                action="rights.check",
                decision="allow",
                structure="751234567",
                purpose="rights",
                subject=f"{minutes:064x}",
                detail={},
            )

    def paris_day(day: int) -> list[datetime]:
        start = datetime.combine(datetime(2026, 12, day).date(), time.min, tzinfo=paris)
        with platform.engine.connect() as conn:
            rows = audit.events_in_window(
                conn, start, start + timedelta(days=1), structure="751234567"
            )
            moments = [at for _insurer, _subject, at, *_rest in rows]
            return [at if at.tzinfo else at.replace(tzinfo=UTC) for at in moments]

    # Then both belong to Paris's 7 December (00:30 and 01:15 there), none to the 6th,
    # whatever the engine stores
    assert sorted(paris_day(7)) == [late, late + timedelta(minutes=45)]
    assert paris_day(6) == []
