"""Row-level security: inside an insurer scope, a query with no WHERE sees one insurer only.

On PostgreSQL the database enforces it (role ``tierspayant_tenant`` and the policies of
migration 0007); on SQLite the scope is a no-op and the application's own
``insurer_id`` filter is the only wall — the last test pins that documented behaviour.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Table, inspect, select
from sqlalchemy.exc import DBAPIError

from tests.integration.operations_support import (
    NOW,
    Person,
    SeedInsurer,
    enrol,
    provider_principal,
)
from tierspayant.app.platform import Platform
from tierspayant.services.identification import identify
from tierspayant.store import audit
from tierspayant.store.claims_tables import claims
from tierspayant.store.schema import metadata
from tierspayant.store.tables import catalogues
from tierspayant.store.tenancy import enforces_rls, insurer_scope

TENANT_TABLES = (
    "beneficiaries",
    "catalogues",
    "conventions",
    "import_runs",
    "claims",
    "claim_lines",
    "prior_authorisations",
)
POSTGRES_ONLY = pytest.mark.parametrize(
    "engine_name", [pytest.param("postgres", marks=pytest.mark.postgres)]
)
SQLITE_ONLY = pytest.mark.parametrize("engine_name", ["sqlite"])

Two = tuple[Platform, tuple[int, str, list[Person]], tuple[int, str, list[Person]]]


def _claim(conn: Connection, insurer_id: int, provider_id: int | None) -> None:
    conn.execute(
        claims.insert().values(
            insurer_id=insurer_id,
            id=1,
            provider_id=provider_id,
            invoice_number=f"T{insurer_id}",
            version=1,
            beneficiary_id=1,
            care_date=date(2025, 3, 1),
            request_digest=bytes(32),
            status="received",
            source="api",
            received_at=datetime(2025, 3, 2, tzinfo=UTC),
            billed_cents=1_000,
            amc_requested_cents=300,
            amc_accepted_cents=0,
        )
    )


@pytest.fixture
def two_insurers(platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path) -> Two:
    platform.clock = lambda: NOW
    worlds = []
    for seed in (1, 2):
        insurer, people = enrol(platform, seed_insurer, tmp_path, 4, seed=seed)
        provider = provider_principal(platform, insurer.amc_number, seed=seed)
        with platform.engine.begin() as conn:
            _claim(conn, insurer.id, provider.provider_id)
        worlds.append((insurer.id, insurer.amc_number, people))
    return platform, worlds[0], worlds[1]


def _owners(conn: Connection, table: Table) -> set[int]:
    # Deliberately no WHERE clause: only the database can narrow this.
    return {int(i) for i in conn.execute(select(table.c.insurer_id)).scalars()}


@POSTGRES_ONLY
def test_given_two_insurers_when_scoped_then_unfiltered_queries_see_one(
    two_insurers: Two,
) -> None:
    platform, (a, _, _), (b, _, _) = two_insurers
    present = set(inspect(platform.engine).get_table_names())
    tables = [metadata.tables[name] for name in TENANT_TABLES if name in present]
    with platform.engine.begin() as conn:
        populated = {t.name: _owners(conn, t) for t in tables}
        for scoped, other in ((a, b), (b, a)):
            with insurer_scope(conn, scoped):
                for table in tables:
                    seen = _owners(conn, table)
                    assert other not in seen, table.name
                    if scoped in populated[table.name]:
                        assert scoped in seen, table.name
        # Leaving the scope restores the login role within the same transaction.
        assert {a, b} <= _owners(conn, metadata.tables["beneficiaries"])
    assert {a, b} <= populated["beneficiaries"] & populated["claims"] & populated["catalogues"]


@POSTGRES_ONLY
def test_given_a_scope_when_writing_another_insurers_row_then_refused(two_insurers: Two) -> None:
    platform, (a, _, _), (b, _, _) = two_insurers
    intrusion = catalogues.insert().values(
        insurer_id=b,
        version=99,
        document="{}",
        digest="0" * 64,
        uploaded_at=NOW,
        uploaded_by="intruder",
    )
    with platform.engine.begin() as conn, insurer_scope(conn, a):
        with pytest.raises(DBAPIError, match="row-level security"):
            conn.execute(intrusion)
        conn.rollback()


@POSTGRES_ONLY
def test_given_a_scope_then_a_real_lookup_still_works_and_is_audited(two_insurers: Two) -> None:
    platform, (a, amc_a, people_a), (_, amc_b, people_b) = two_insurers
    with platform.engine.begin() as conn, insurer_scope(conn, a):
        _, found = identify(platform, conn, people_a[0].card(amc_a))
        assert found is not None
        _, hidden = identify(platform, conn, people_b[0].card(amc_b))
        assert hidden is None  # B's rows do not exist for this transaction
        audit.append(conn, at=NOW, actor="test", action="tenancy.check", decision="allow")


@POSTGRES_ONLY
def test_given_the_tenant_role_without_an_insurer_then_it_fails_closed(
    platform: Platform,
) -> None:
    with platform.engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL ROLE tierspayant_tenant")
        with pytest.raises(DBAPIError, match=r"tierspayant\.insurer_id"):
            conn.execute(select(catalogues.c.insurer_id)).all()
        conn.rollback()


@SQLITE_ONLY
def test_given_sqlite_then_the_scope_is_a_no_op_and_the_app_filter_is_the_wall(
    two_insurers: Two,
) -> None:
    platform, (a, _, _), (b, _, _) = two_insurers
    with platform.engine.begin() as conn, insurer_scope(conn, a):
        assert not enforces_rls(conn)
        assert _owners(conn, metadata.tables["beneficiaries"]) == {a, b}


def test_given_a_bad_insurer_id_then_refused(platform: Platform) -> None:
    with platform.engine.begin() as conn:
        for bad in (0, -1, True):
            with pytest.raises(ValueError, match="positive integer"), insurer_scope(conn, bad):
                pass
