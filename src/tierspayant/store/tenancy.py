"""Insurer scope of a transaction: row-level security on PostgreSQL, a no-op on SQLite.

Every query of an insurer's data already filters on ``insurer_id`` (the application
filter). On PostgreSQL, :func:`insurer_scope` adds a second, independent wall: for the
rest of the block the transaction runs as the role ``tierspayant_tenant``, whose
row-level security policies (migration 0007) show and accept only rows of the insurer
named in the ``tierspayant.insurer_id`` setting. A query that forgot its ``WHERE
insurer_id = …`` then still returns that insurer's rows only.

SQLite has no roles nor row-level security: there the scope changes nothing and the
application filter is the only wall (the embedded mode serves one operator on one
machine; production runs on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, text

TENANT_ROLE = "tierspayant_tenant"
INSURER_SETTING = "tierspayant.insurer_id"
POLICY = "tierspayant_tenant_isolation"
# Insurer-owned tables under row-level security (those present when the SQL is applied).
TENANT_TABLES = (
    "beneficiaries",
    "catalogues",
    "conventions",
    "import_runs",
    "claims",
    "claim_lines",
    "prior_authorisations",
    "canary_marks",
    "benefit_counters",
    "engaged_lines",
    "amount_reservations",
    "payment_lines",
    "overpayments",
    "overpayment_recoveries",
    "billing_statements",
    "insurer_mandates",
    "insurer_fees",
    "fund_call_returns",
    "cards",
    "card_signing_keys",
    "claim_disputes",
    "subject_index",
    "subject_index_marks",
)
# Shared tables the role may append to (everything else it may only read).
APPEND_TABLES = ("audit_events", "security_alerts", "guard_daily")


def rls_statements(existing: Iterable[str]) -> list[str]:
    """The PostgreSQL statements that create the tenant role and its policies.

    Idempotent, so a later migration (after new insurer-owned tables) can apply them
    again with the then-existing tables. Read access to every other table is granted,
    now and by default for tables created later by the same role: use cases scoped to
    one insurer still read shared reference rows (insurers, data keys, providers…).
    """
    present = set(existing)
    statements = [
        f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{TENANT_ROLE}') THEN
    CREATE ROLE {TENANT_ROLE} NOLOGIN;
  END IF;
END $$""",  # noqa: S608 - module constants only
        # The login role must be a member of the tenant role to ``SET ROLE`` into it.
        f"GRANT {TENANT_ROLE} TO CURRENT_USER",
        f"GRANT USAGE ON SCHEMA public TO {TENANT_ROLE}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {TENANT_ROLE}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {TENANT_ROLE}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {TENANT_ROLE}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO {TENANT_ROLE}",
    ]
    statements += [
        f"GRANT INSERT ON {table} TO {TENANT_ROLE}" for table in APPEND_TABLES if table in present
    ]
    for table in (t for t in TENANT_TABLES if t in present):
        check = f"insurer_id = current_setting('{INSURER_SETTING}')::int"
        statements += [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {TENANT_ROLE}",
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            f"DROP POLICY IF EXISTS {POLICY} ON {table}",
            f"CREATE POLICY {POLICY} ON {table} FOR ALL TO {TENANT_ROLE} "
            f"USING ({check}) WITH CHECK ({check})",
        ]
    # Row-level security is the parent's: a partition read directly would skip it. The
    # grant on all tables above reaches the partitions too, so they are closed again
    # (the role reads and writes through the parent only).
    statements.append(
        f"""DO $$ DECLARE part regclass; BEGIN
  FOR part IN SELECT c.oid::regclass FROM pg_class c
               WHERE c.relispartition AND c.relkind IN ('r', 'p') LOOP
    EXECUTE format('REVOKE ALL ON %s FROM {TENANT_ROLE}', part);
  END LOOP;
END $$"""  # noqa: S608 - module constants only
    )
    return statements


def drop_rls_statements(existing: Iterable[str]) -> list[str]:
    """Undo :func:`rls_statements` except the role itself (shared by the whole cluster)."""
    present = set(existing)
    statements: list[str] = []
    for table in (t for t in TENANT_TABLES if t in present):
        statements += [
            f"DROP POLICY IF EXISTS {POLICY} ON {table}",
            f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
        ]
    return [
        *statements,
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT ON TABLES FROM {TENANT_ROLE}",  # noqa: S608
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE ON SEQUENCES FROM {TENANT_ROLE}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {TENANT_ROLE}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {TENANT_ROLE}",
        f"REVOKE USAGE ON SCHEMA public FROM {TENANT_ROLE}",
    ]


def enforces_rls(conn: Connection) -> bool:
    """Whether :func:`insurer_scope` is enforced by the database on this connection."""
    return conn.dialect.name == "postgresql"


@contextmanager
def insurer_scope(conn: Connection, insurer_id: int) -> Iterator[Connection]:
    """Run the block as the tenant role, restricted to ``insurer_id`` (PostgreSQL).

    Must be used inside a transaction (``engine.begin()`` or an autobegun connection):
    ``SET LOCAL`` lasts until the transaction ends at the latest; leaving the block
    restores the login role earlier, so the rest of the transaction is unscoped again.
    """
    if isinstance(insurer_id, bool) or not isinstance(insurer_id, int) or insurer_id < 1:
        raise ValueError("insurer scope needs a positive integer insurer id")
    if not enforces_rls(conn):
        yield conn
        return
    conn.execute(
        text("SELECT set_config(:name, :value, true)"),
        {"name": INSURER_SETTING, "value": str(insurer_id)},
    )
    conn.exec_driver_sql(f"SET LOCAL ROLE {TENANT_ROLE}")
    try:
        yield conn
    finally:
        if conn.in_transaction() and not _aborted(conn):
            conn.exec_driver_sql("RESET ROLE")
            conn.execute(text("SELECT set_config(:name, '', true)"), {"name": INSURER_SETTING})


def _aborted(conn: Connection) -> bool:
    """True when the transaction failed (PostgreSQL refuses every statement until rollback;
    the rollback itself then ends the scope)."""
    dbapi = conn.connection.dbapi_connection
    status = getattr(getattr(dbapi, "info", None), "transaction_status", None)
    return status is not None and int(status) == 3  # psycopg TransactionStatus.INERROR
