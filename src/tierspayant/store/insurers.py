"""Insurers (AMC) and the versions of their guarantee catalogues, in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, bindparam, func, select

from tierspayant.store.tables import catalogues, insurers


@dataclass(frozen=True, slots=True)
class Insurer:
    id: int
    amc_number: str
    name: str
    kind: str


# Built once: the rights check and the calculation run them (through caches).
_BY_AMC = select(insurers).where(insurers.c.amc_number == bindparam("amc"))
_LATEST_VERSION = select(func.max(catalogues.c.version)).where(
    catalogues.c.insurer_id == bindparam("insurer_id")
)


def insert_insurer(
    conn: Connection, amc_number: str, name: str, kind: str, created_at: datetime
) -> int:
    """Insert one insurer; its id."""
    return int(
        conn.execute(
            insurers.insert()
            .values(amc_number=amc_number, name=name, kind=kind, created_at=created_at)
            .returning(insurers.c.id)
        ).scalar_one()
    )


def insurer_by_amc(conn: Connection, amc_number: str) -> Insurer | None:
    """The insurer with this AMC number, or None."""
    row = conn.execute(_BY_AMC, {"amc": amc_number}).first()
    return None if row is None else Insurer(int(row.id), row.amc_number, row.name, row.kind)


def all_insurers(conn: Connection) -> list[Insurer]:
    """Every insurer, by AMC number."""
    rows = conn.execute(select(insurers).order_by(insurers.c.amc_number)).all()
    return [Insurer(int(r.id), r.amc_number, r.name, r.kind) for r in rows]


def insurer_numbers(conn: Connection) -> list[tuple[int, str]]:
    """(id, AMC number) of every insurer, by id."""
    owners = conn.execute(select(insurers.c.id, insurers.c.amc_number).order_by(insurers.c.id))
    return [(int(i), str(a)) for i, a in owners]


def first_insurer(conn: Connection, amc_number: str | None = None) -> tuple[int, str] | None:
    """(id, AMC number) of the insurer ``amc_number``, or of the lowest AMC number if None."""
    query = select(insurers.c.id, insurers.c.amc_number).order_by(insurers.c.amc_number)
    if amc_number is not None:
        query = query.where(insurers.c.amc_number == amc_number)
    row = conn.execute(query.limit(1)).first()
    return None if row is None else (int(row.id), str(row.amc_number))


def insurer_id_by_amc(conn: Connection, amc_number: str) -> int | None:
    """The id of the insurer with this AMC number, or None."""
    insurer_id = conn.execute(
        select(insurers.c.id).where(insurers.c.amc_number == amc_number)
    ).scalar()
    return None if insurer_id is None else int(insurer_id)


def amc_number_of(conn: Connection, insurer_id: int) -> str:
    """The AMC number of the insurer ``insurer_id`` (which must exist)."""
    return str(
        conn.execute(select(insurers.c.amc_number).where(insurers.c.id == insurer_id)).scalar_one()
    )


# --- catalogues --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogueVersion:
    version: int
    digest: str


def latest_catalogue(conn: Connection, insurer_id: int) -> CatalogueVersion | None:
    """Version and digest of the insurer's newest catalogue, or None."""
    row = conn.execute(
        select(catalogues.c.version, catalogues.c.digest)
        .where(catalogues.c.insurer_id == insurer_id)
        .order_by(catalogues.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else CatalogueVersion(int(row.version), str(row.digest))


def latest_catalogue_document(conn: Connection, insurer_id: int) -> str | None:
    """The canonical JSON of the insurer's newest catalogue, or None if it has none."""
    document = conn.execute(
        select(catalogues.c.document)
        .where(catalogues.c.insurer_id == insurer_id)
        .order_by(catalogues.c.version.desc())
        .limit(1)
    ).scalar()
    return None if document is None else str(document)


def insert_catalogue(
    conn: Connection,
    *,
    insurer_id: int,
    version: int,
    document: str,
    digest: str,
    uploaded_at: datetime,
    uploaded_by: str,
) -> None:
    """Store one version of an insurer's catalogue (canonical JSON)."""
    conn.execute(
        catalogues.insert().values(
            insurer_id=insurer_id,
            version=version,
            document=document,
            digest=digest,
            uploaded_at=uploaded_at,
            uploaded_by=uploaded_by,
        )
    )


def latest_catalogue_version(conn: Connection, insurer_id: int) -> int | None:
    """The newest catalogue version of an insurer, or None if it has none."""
    version = conn.execute(_LATEST_VERSION, {"insurer_id": insurer_id}).scalar()
    return None if version is None else int(version)


def catalogue_document(conn: Connection, insurer_id: int, version: int) -> str:
    """The canonical JSON of one catalogue version (which must exist)."""
    return str(
        conn.execute(
            select(catalogues.c.document).where(
                catalogues.c.insurer_id == insurer_id, catalogues.c.version == version
            )
        ).scalar_one()
    )


@dataclass(frozen=True, slots=True)
class CatalogueEdition:
    """One stored version of an insurer's catalogue, without its document."""

    version: int
    uploaded_at: datetime
    digest: str


def catalogue_editions(
    conn: Connection, insurer_id: int, limit: int = 50
) -> list[CatalogueEdition]:
    """The insurer's catalogue versions, newest first (at most ``limit``)."""
    rows = conn.execute(
        select(catalogues.c.version, catalogues.c.uploaded_at, catalogues.c.digest)
        .where(catalogues.c.insurer_id == insurer_id)
        .order_by(catalogues.c.version.desc())
        .limit(limit)
    )
    return [CatalogueEdition(int(r.version), _utc(r.uploaded_at), str(r.digest)) for r in rows]


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite: naive, UTC
