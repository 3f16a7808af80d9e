"""Partitioning on PostgreSQL (migration 0018), checked over the migrated schema itself:
what a cluster distributed by insurer (Citus) needs, the audit log by month, the upgrade
of a database that holds rows, and the archiving of a month with the chain still
verifying after it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from tierspayant.app.platform import Platform, initialise
from tierspayant.config import load_settings
from tierspayant.services import audit_archive, audit_log, checkpoints
from tierspayant.services.errors import Conflict
from tierspayant.store import audit
from tierspayant.store.db import alembic_config
from tierspayant.store.partitions import (
    AUDIT_DEFAULT,
    HASH_PARTITIONS,
    INSURER_PARTITIONED,
    INSURER_PARTITIONED_LATER,
    audit_months,
    default_partition_rows,
    ensure_audit_months,
    first_of_month,
    next_month,
)
from tierspayant.store.tables import insurers

pytestmark = pytest.mark.postgres

SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/"


@pytest.fixture
def database() -> Iterator[str]:
    """A database of this helper's own, dropped after the test."""
    name = f"tp_part_{uuid.uuid4().hex[:10]}"
    admin = create_engine(SERVER + "postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except DBAPIError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable: {exc.orig}")
    try:
        yield SERVER + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_platform(database: str, tmp_path: Path) -> Iterator[Platform]:
    settings = load_settings(
        {"TIERSPAYANT_DATA_DIR": str(tmp_path / "data"), "TIERSPAYANT_DATABASE_URL": database}
    )
    built = initialise(settings)
    try:
        yield built
    finally:
        built.close()


def _rows(conn: Connection, sql: str) -> list[Any]:
    return [tuple(r) for r in conn.execute(text(sql)).all()]


# --- the migrated schema --------------------------------------------------------------

_PARTITION_KEYS = """
SELECT c.relname, pt.partstrat,
       array(SELECT a.attname FROM unnest(pt.partattrs) k
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k)
FROM pg_partitioned_table pt JOIN pg_class c ON c.oid = pt.partrelid
WHERE c.relnamespace = 'public'::regnamespace
"""
_KEYS = """
SELECT c.relname, i.relname, array(SELECT a.attname FROM unnest(x.indkey) k
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k)
FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
WHERE (x.indisunique OR x.indisprimary) AND c.relnamespace = 'public'::regnamespace
  AND c.relkind IN ('p', 'r') AND NOT c.relispartition
"""
_FOREIGN_KEYS = """
SELECT k.conname, src.relname, dst.relname,
       array(SELECT a.attname FROM unnest(k.conkey) n
             JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = n),
       array(SELECT a.attname FROM unnest(k.confkey) n
             JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = n)
FROM pg_constraint k JOIN pg_class src ON src.oid = k.conrelid
JOIN pg_class dst ON dst.oid = k.confrelid
WHERE k.contype = 'f' AND k.connamespace = 'public'::regnamespace AND NOT src.relispartition
"""
_INSURER_COLUMNS = """
SELECT col.table_name, col.is_nullable FROM information_schema.columns col
JOIN pg_class c ON c.relname = col.table_name AND c.relnamespace = 'public'::regnamespace
WHERE col.table_schema = 'public' AND col.column_name = 'insurer_id' AND NOT c.relispartition
"""


def test_the_migrated_schema_can_be_distributed_by_insurer(pg_platform: Platform) -> None:
    with pg_platform.engine.connect() as conn:
        partitioned = {str(t): (str(s), list(cols)) for t, s, cols in _rows(conn, _PARTITION_KEYS)}
        # Every insurer-owned table that grows with people: hash on insurer_id, the
        # audit log: range on at.
        for table in (*INSURER_PARTITIONED, *INSURER_PARTITIONED_LATER):
            assert partitioned.pop(table) == ("h", ["insurer_id"]), table
        assert partitioned.pop("audit_events") == ("r", ["at"])
        assert partitioned == {}
        counts = dict(
            _rows(
                conn,
                "SELECT p.relname, count(*) FROM pg_inherits i JOIN pg_class p"
                " ON p.oid = i.inhparent WHERE p.relkind = 'p' GROUP BY p.relname",
            )
        )
        by_insurer = (*INSURER_PARTITIONED, *INSURER_PARTITIONED_LATER)
        assert all(counts[t] == HASH_PARTITIONS for t in by_insurer)
        keys = {**dict.fromkeys(by_insurer, "insurer_id"), "audit_events": "at"}
        # Every primary key and unique constraint or index of a partitioned table holds
        # the partition key: it is enforced by the database, partition by partition.
        checked = 0
        for table, index, columns in _rows(conn, _KEYS):
            if table in keys:
                assert keys[str(table)] in columns, (table, index, columns)
                checked += 1
        assert checked >= len(keys) + 4
        # A table with a mandatory insurer_id leads its key with it: distributable and
        # colocated by insurer.
        for table, nullable in _rows(conn, _INSURER_COLUMNS):
            if nullable == "NO":
                primary = [c for t, i, c in _rows(conn, _KEYS) if t == table and i == f"pk_{table}"]
                assert primary, table
                assert "insurer_id" in primary[0], table
        # No foreign key crosses insurers: between two insurer-owned tables it carries
        # insurer_id on both sides; otherwise it points at a shared reference table.
        owned = {str(t) for t, nullable in _rows(conn, _INSURER_COLUMNS) if nullable == "NO"}
        for name, source, target, columns, referred in _rows(conn, _FOREIGN_KEYS):
            if source in owned and target in owned:
                assert "insurer_id" in columns, name
                assert "insurer_id" in referred, name
            if source in keys:
                assert target in ("insurers", "providers"), name
        # The ledger: every posting in one insurer's books, idempotent per insurer, its
        # entries keyed in the same books.
        ledger_keys = {str(i): set(c) for t, i, c in _rows(conn, _KEYS) if "ledger" in t}
        assert ledger_keys == {
            "pk_ledger_postings": {"insurer_id", "id"},
            "uq_ledger_postings_insurer_journal_reference": {"insurer_id", "journal", "reference"},
            "pk_ledger_entries": {"insurer_id", "posting_id", "line_no"},
        }
        # Row-level security on the parents; the tenant role cannot name a partition.
        assert not _rows(
            conn,
            "SELECT c.relname FROM pg_class c WHERE c.relispartition AND c.relname LIKE"
            " 'claims_p%' AND has_table_privilege('tierspayant_tenant', c.oid, 'SELECT')",
        )


def test_the_rights_check_lookup_prunes_to_one_partition_and_uses_an_index(
    pg_platform: Platform,
) -> None:
    with pg_platform.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            str(line)
            for line in conn.execute(
                text(
                    "EXPLAIN SELECT * FROM beneficiaries WHERE insurer_id = 7"
                    " AND idx_nir = '\\x00'::bytea"
                )
            ).scalars()
        )
    assert plan.count("on beneficiaries_p") == 1, plan
    assert "Index" in plan, plan


def test_a_ledger_posting_is_found_in_its_insurer_s_partition_and_is_unique_there(
    pg_platform: Platform,
) -> None:
    posting = (
        "INSERT INTO ledger_postings (insurer_id, journal, reference, value_date, posted_at,"
        " memo, total_cents) VALUES (:i, 'payment', 'pay:2026-11-30:42', '2026-11-30', now(),"
        " '', 100)"
    )
    with pg_platform.engine.begin() as conn:
        # The same movement in two insurers' books: two postings.
        conn.execute(text(posting), {"i": 7})
        conn.execute(text(posting), {"i": 8})
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            str(line)
            for line in conn.execute(
                text(
                    "EXPLAIN SELECT id FROM ledger_postings WHERE insurer_id = 7"
                    " AND journal = 'payment' AND reference = 'pay:2026-11-30:42'"
                )
            ).scalars()
        )
    assert plan.count("on ledger_postings_p") == 1, plan
    assert "Index" in plan, plan
    # Twice in one insurer's books: refused by the database, across the partitions' key.
    with pg_platform.engine.begin() as conn, pytest.raises(DBAPIError, match="uq_ledger_postings"):
        conn.execute(text(posting), {"i": 7})


# --- the audit log by month -----------------------------------------------------------


def _append(conn: Connection, at: datetime, n: int) -> None:
    for i in range(n):
        audit.append(conn, at=at + timedelta(minutes=i), actor="test", action="t", decision="ok")


def test_an_event_of_a_month_without_partition_is_kept_then_moved_to_its_month(
    pg_platform: Platform,
) -> None:
    far = first_of_month(datetime.now(UTC).date()) + timedelta(days=400)
    with pg_platform.engine.begin() as conn:
        _append(conn, datetime(far.year, far.month, 3, tzinfo=UTC), 2)
        assert default_partition_rows(conn) == 2
    assert checkpoints.maintain_audit_partitions(pg_platform) == 2  # today's months only
    with pg_platform.engine.begin() as conn:
        created = ensure_audit_months(conn, far)
        assert f"audit_events_y{far.year:04d}m{far.month:02d}" in created
        assert default_partition_rows(conn) == 0
        assert audit.count_events(conn) == 2
    assert audit_log.verify(pg_platform).ok
    with pg_platform.engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.exec_driver_sql("UPDATE audit_events SET actor = 'x'")
    with pg_platform.engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
        conn.exec_driver_sql(f"DELETE FROM audit_events_y{far.year:04d}m{far.month:02d}")


def test_a_checkpointed_month_is_archived_and_the_chain_verifies_from_it(
    pg_platform: Platform, tmp_path: Path
) -> None:
    this_month = first_of_month(datetime.now(UTC).date())
    two_ago = first_of_month(this_month - timedelta(days=40))
    one_ago = next_month(two_ago)
    with pg_platform.engine.begin() as conn:
        assert audit.count_events(conn) == 0
        _append(conn, datetime(two_ago.year, two_ago.month, 5, tzinfo=UTC), 5)
        _append(conn, datetime(one_ago.year, one_ago.month, 5, tzinfo=UTC), 4)
        ensure_audit_months(conn, this_month)
        assert [m.month for m in audit_months(conn)][:2] == [two_ago, one_ago]
    out = tmp_path / "archives"
    label = f"{two_ago:%Y-%m}"
    # Not covered by a signed checkpoint yet: refused, nothing detached.
    with pytest.raises(Conflict) as refused:
        audit_archive.archive_month(pg_platform, two_ago, out)
    assert refused.value.code == "audit_archive.not_covered"
    directory = pg_platform.settings.jobs.checkpoint_dir(pg_platform.settings.data_dir)
    (out / f"audit-{label}.jsonl").unlink()
    checkpoints.write_checkpoint(pg_platform, directory)
    # Only the oldest month.
    with pytest.raises(Conflict, match="plus ancien"):
        audit_archive.archive_month(pg_platform, one_ago, out)

    result = audit_archive.archive_month(pg_platform, two_ago, out)

    assert (result.events, result.first_seq, result.last_seq) == (5, 1, 5)
    manifest = json.loads(result.manifest.read_text())
    assert manifest["lines"] == 5
    assert manifest["sha256"] == result.digest
    assert len(result.file.read_text().splitlines()) == 5
    with pg_platform.engine.begin() as conn:
        assert audit_months(conn)[0].month == one_ago
        assert audit.count_events(conn) == 4
        _append(conn, datetime.now(UTC), 2)
    report = audit_log.verify(pg_platform)
    assert report.ok, report
    assert report.last_seq == 11
    assert checkpoints.write_checkpoint(pg_platform, directory) is not None
    public_key = checkpoints.load_signing_key(pg_platform.settings).public_key()
    assert checkpoints.verify_against_checkpoints(pg_platform.engine, directory, public_key).ok
    # The start point is anchored: altering it in the database breaks verification.
    with pg_platform.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE audit_archives SET last_hash = '\\x00'::bytea || substr(last_hash, 2)"
        )
    assert not audit_log.verify(pg_platform).ok


def test_archiving_is_refused_on_the_embedded_database(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "TIERSPAYANT_DATA_DIR": str(tmp_path / "d"),
            "TIERSPAYANT_DATABASE_URL": f"sqlite:///{tmp_path / 'd' / 'tp.sqlite3'}",
        }
    )
    platform = initialise(settings)
    try:
        with pytest.raises(Conflict, match="PostgreSQL"):
            audit_archive.archive_month(platform, date(2020, 1, 1), tmp_path / "a")
    finally:
        platform.close()


# --- the upgrade of a database with rows ----------------------------------------------


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_upgrading_a_database_with_rows_keeps_them_and_the_downgrade_too(database: str) -> None:
    cfg = alembic_config(database)
    command.upgrade(cfg, "0017")
    engine = create_engine(database)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            ids = [
                conn.execute(
                    insurers.insert()
                    .values(
                        amc_number=f"99000000{n}", name=f"M{n}", kind="mutuelle", created_at=now
                    )
                    .returning(insurers.c.id)
                ).scalar_one()
                for n in range(3)
            ]
            for insurer_id in ids:
                conn.execute(
                    text(
                        "INSERT INTO import_runs (insurer_id, kind, mode, file_digest,"
                        " started_at, lines, inserted, updated, unchanged, terminated,"
                        " rejected, status) VALUES (:i, 'b', 'full', 'x', :t, 0, 0, 0, 0,"
                        " 0, 0, 'done')"
                    ),
                    {"i": insurer_id, "t": now},
                )
            _append(conn, now - timedelta(days=70), 3)
            _append(conn, now, 2)
        command.upgrade(cfg, "head")
        assert _count(engine, "import_runs") == 3
        assert _count(engine, "audit_events") == 5
        assert _count(engine, AUDIT_DEFAULT) == 0
        with engine.begin() as conn:
            # The serial goes on where it was.
            next_id = conn.execute(
                text(
                    "INSERT INTO import_runs (insurer_id, kind, mode, file_digest, started_at,"
                    " lines, inserted, updated, unchanged, terminated, rejected, status)"
                    " VALUES (:i, 'b', 'full', 'x', :t, 0, 0, 0, 0, 0, 0, 'done') RETURNING id"
                ),
                {"i": ids[0], "t": now},
            ).scalar_one()
            assert next_id == 4
        with engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.exec_driver_sql("DELETE FROM audit_events")
        command.downgrade(cfg, "0017")
        assert _count(engine, "import_runs") == 4
        assert _count(engine, "audit_events") == 5
        with engine.connect() as conn:
            assert not _rows(conn, "SELECT 1 FROM pg_partitioned_table")
    finally:
        engine.dispose()


def test_a_unique_key_with_the_partition_key_is_enforced_across_partitions(
    pg_platform: Platform,
) -> None:
    now = datetime.now(UTC)
    claim = (
        "INSERT INTO claims (insurer_id, id, provider_id, invoice_number, version,"
        " beneficiary_id, care_date, request_digest, status, source, received_at,"
        " billed_cents, amc_requested_cents, amc_accepted_cents, maternity)"
        " VALUES (:i, :id, :p, 'F-1', 1, 1, '2026-01-05', '\\x00', 'received', 'api', :t,"
        " 100, 50, 0, false)"
    )
    with pg_platform.engine.begin() as conn:
        ids = [
            conn.execute(
                insurers.insert()
                .values(amc_number=f"98000000{n}", name=f"M{n}", kind="mutuelle", created_at=now)
                .returning(insurers.c.id)
            ).scalar_one()
            for n in range(2)
        ]
        provider = conn.execute(
            text(
                "INSERT INTO providers (am_number, category, name, optam, status, created_at)"
                " VALUES ('751111111', 'pharmacie', 'P', false, 'active', :t) RETURNING id"
            ),
            {"t": now},
        ).scalar_one()
        conn.execute(text(claim), {"i": ids[0], "id": 1, "p": provider, "t": now})
        # Per insurer: the same invoice for another insurer is another key.
        conn.execute(text(claim), {"i": ids[1], "id": 2, "p": provider, "t": now})
    with pg_platform.engine.begin() as conn, pytest.raises(DBAPIError, match="uq_claims"):
        conn.execute(text(claim), {"i": ids[0], "id": 3, "p": provider, "t": now})
