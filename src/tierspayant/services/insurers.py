"""Insurers (AMC) and their guarantee catalogues."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from tierspayant.domain.errors import CatalogueError
from tierspayant.domain.guarantees import Catalogue, Contract
from tierspayant.domain.identifiers import parse_amc_number
from tierspayant.domain.responsable import validate_responsable
from tierspayant.formats.catalogue import dump_catalogue, parse_catalogue
from tierspayant.services.caching import TtlCache
from tierspayant.services.errors import Conflict, NotFound, ServiceError
from tierspayant.services.platform import Platform
from tierspayant.store import audit
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import catalogues, insurers

INSURER_KINDS = ("mutuelle", "prevoyance", "assureur")


@dataclass(frozen=True, slots=True)
class Insurer:
    id: int
    amc_number: str
    name: str
    kind: str


def add_insurer(platform: Platform, amc_number: str, name: str, kind: str, actor: str) -> Insurer:
    """Register an insurer and create its data keys."""
    amc = parse_amc_number(amc_number)
    if kind not in INSURER_KINDS:
        raise ServiceError(
            "insurer.kind", f"kind must be one of {', '.join(INSURER_KINDS)}", field="kind"
        )
    if not name.strip():
        raise ServiceError("insurer.name", "name must not be empty", field="name")
    now = platform.now()
    try:
        with platform.engine.begin() as conn:
            insurer_id = conn.execute(
                insurers.insert()
                .values(amc_number=amc, name=name.strip(), kind=kind, created_at=now)
                .returning(insurers.c.id)
            ).scalar_one()
            platform.keys.create(conn, insurer_scope(amc), now)
            audit.append(
                conn, at=now, actor=actor, action="insurer.add", decision="allow", insurer=amc
            )
    except IntegrityError as exc:
        raise Conflict("insurer.exists", f"an insurer with AMC number {amc} exists") from exc
    return Insurer(int(insurer_id), amc, name.strip(), kind)


_BY_AMC = select(insurers).where(insurers.c.amc_number == bindparam("amc"))
_LATEST_VERSION = select(func.max(catalogues.c.version)).where(
    catalogues.c.insurer_id == bindparam("insurer_id")
)


def get_insurer(conn: Connection, amc_number: str) -> Insurer:
    """The insurer with this AMC number, or NotFound ``insurer.unknown``."""
    row = conn.execute(_BY_AMC, {"amc": amc_number}).first()
    if row is None:
        raise NotFound("insurer.unknown", "no insurer has this AMC number", field="amc_number")
    return Insurer(int(row.id), row.amc_number, row.name, row.kind)


def cached_insurer(platform: Platform, conn: Connection, amc_number: str) -> Insurer:
    """:func:`get_insurer` through the platform's short-lived cache (hot paths)."""
    insurer = platform.insurers.get(amc_number)
    if insurer is None:
        insurer = get_insurer(conn, amc_number)
        platform.insurers.put(amc_number, insurer)
    return insurer


def list_insurers(platform: Platform) -> list[Insurer]:
    """Every insurer, by AMC number."""
    with platform.engine.connect() as conn:
        rows = conn.execute(select(insurers).order_by(insurers.c.amc_number)).all()
    return [Insurer(int(r.id), r.amc_number, r.name, r.kind) for r in rows]


@dataclass(frozen=True, slots=True)
class CatalogueUpload:
    insurer: str
    version: int
    contracts: tuple[str, ...]
    unchanged: bool


def upload_catalogue(
    platform: Platform, amc_number: str, document: Mapping[str, Any], actor: str
) -> CatalogueUpload:
    """Validate a catalogue (format and contrat responsable rules) and store a new version.

    Uploading the same document again stores nothing and says so.
    """
    catalogue = parse_catalogue(document)
    amc = parse_amc_number(amc_number)
    if catalogue.insurer != amc:
        raise CatalogueError(
            "catalogue.insurer_mismatch",
            f"the catalogue is for insurer {catalogue.insurer}, not {amc}",
            field="insurer",
        )
    today = platform.today()
    for contract in catalogue.contracts:
        if contract.responsable:
            validate_responsable(contract, platform.reference, today)
    canonical = json.dumps(dump_catalogue(catalogue), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, amc)
        latest = conn.execute(
            select(catalogues.c.version, catalogues.c.digest)
            .where(catalogues.c.insurer_id == insurer.id)
            .order_by(catalogues.c.version.desc())
            .limit(1)
        ).first()
        codes = tuple(c.code for c in catalogue.contracts)
        if latest is not None and latest.digest == digest:
            return CatalogueUpload(amc, int(latest.version), codes, unchanged=True)
        version = 1 if latest is None else int(latest.version) + 1
        conn.execute(
            catalogues.insert().values(
                insurer_id=insurer.id,
                version=version,
                document=canonical,
                digest=digest,
                uploaded_at=now,
                uploaded_by=actor,
            )
        )
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="catalogue.upload",
            decision="allow",
            insurer=amc,
            detail={"version": version, "contracts": len(codes)},
        )
    platform.catalogues.forget(insurer.id)
    return CatalogueUpload(amc, version, codes, unchanged=False)


class CatalogueCache:
    """Parsed catalogues by (insurer, version): parsing happens once per process."""

    def __init__(self, version_seconds: float = 0) -> None:
        self._parsed: dict[tuple[int, int], Catalogue] = {}
        self._lock = threading.Lock()
        # The newest version number is read again after ``version_seconds`` (an upload
        # by this process forgets it at once): see services/caching.py.
        self._versions: TtlCache[int, int] = TtlCache(version_seconds, max_entries=1_000)

    def forget(self, insurer_id: int) -> None:
        """Read the newest version again on next use (after an upload)."""
        self._versions.discard(insurer_id)

    def latest(self, conn: Connection, insurer_id: int) -> Catalogue | None:
        """The newest catalogue of an insurer, or None if it has none."""
        version = self._versions.get(insurer_id)
        if version is None:
            version = conn.execute(_LATEST_VERSION, {"insurer_id": insurer_id}).scalar()
            if version is not None:
                self._versions.put(insurer_id, int(version))
        if version is None:
            return None
        key = (insurer_id, int(version))
        cached = self._parsed.get(key)
        if cached is not None:
            return cached
        document = conn.execute(
            select(catalogues.c.document).where(
                catalogues.c.insurer_id == insurer_id, catalogues.c.version == version
            )
        ).scalar_one()
        parsed = parse_catalogue(json.loads(document))
        with self._lock:
            self._parsed[key] = parsed
        return parsed

    def contract(self, conn: Connection, insurer_id: int, code: str) -> Contract | None:
        """The contract ``code`` in the newest catalogue of an insurer."""
        catalogue = self.latest(conn, insurer_id)
        if catalogue is None:
            return None
        for contract in catalogue.contracts:
            if contract.code == code:
                return contract
        return None
