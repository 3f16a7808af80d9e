"""Insurers (AMC) and their guarantee catalogues."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import CatalogueCode, DirectoryCode
from tierspayant.domain.errors import CatalogueError
from tierspayant.domain.identifiers import parse_amc_number
from tierspayant.domain.responsable import validate_responsable
from tierspayant.formats.catalogue import dump_catalogue, parse_catalogue
from tierspayant.services.errors import Conflict, NotFound, ServiceError
from tierspayant.store import audit
from tierspayant.store import insurers as store
from tierspayant.store.insurers import Insurer as Insurer
from tierspayant.store.keys import insurer_scope

INSURER_KINDS = ("mutuelle", "prevoyance", "assureur")


def add_insurer(platform: Platform, amc_number: str, name: str, kind: str, actor: str) -> Insurer:
    """Register an insurer and create its data keys."""
    amc = parse_amc_number(amc_number)
    if kind not in INSURER_KINDS:
        raise ServiceError(
            DirectoryCode.INSURER_KIND,
            f"kind must be one of {', '.join(INSURER_KINDS)}",
            field="kind",
        )
    if not name.strip():
        raise ServiceError(DirectoryCode.INSURER_NAME, "name must not be empty", field="name")
    now = platform.now()
    try:
        with platform.engine.begin() as conn:
            insurer_id = store.insert_insurer(conn, amc, name.strip(), kind, now)
            platform.keys.create(conn, insurer_scope(amc), now)
            audit.append(
                conn, at=now, actor=actor, action="insurer.add", decision="allow", insurer=amc
            )
    except IntegrityError as exc:
        raise Conflict(
            DirectoryCode.INSURER_EXISTS, f"an insurer with AMC number {amc} exists"
        ) from exc
    return Insurer(insurer_id, amc, name.strip(), kind)


def get_insurer(conn: Connection, amc_number: str) -> Insurer:
    """The insurer with this AMC number, or NotFound ``insurer.unknown``."""
    insurer = store.insurer_by_amc(conn, amc_number)
    if insurer is None:
        raise NotFound(
            DirectoryCode.INSURER_UNKNOWN, "no insurer has this AMC number", field="amc_number"
        )
    return insurer


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
        return store.all_insurers(conn)


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
            CatalogueCode.INSURER_MISMATCH,
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
        latest = store.latest_catalogue(conn, insurer.id)
        codes = tuple(c.code for c in catalogue.contracts)
        if latest is not None and latest.digest == digest:
            return CatalogueUpload(amc, latest.version, codes, unchanged=True)
        version = 1 if latest is None else latest.version + 1
        store.insert_catalogue(
            conn,
            insurer_id=insurer.id,
            version=version,
            document=canonical,
            digest=digest,
            uploaded_at=now,
            uploaded_by=actor,
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
