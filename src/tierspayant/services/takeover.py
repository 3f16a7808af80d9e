"""Import the takeover file of an insurer moved to the platform mid-year.

What its members already consumed of their ceilings and counters, and the dates of their
last covered equipment, become counter history (``store/takeover.py``), read by every
calculation, prior authorisation and adjudication like the history of accepted invoices.

All or nothing per file: every line is checked first (its own values, then the
beneficiary in the insurer's base, the key in the beneficiary's contract, duplicates);
one refused line refuses the file and nothing is written. Idempotent: each beneficiary
the file names ends with exactly the file's rows, so the same file twice changes
nothing. Every run, applied or refused, leaves one audit event (counts and the file's
digest, never an identity).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import DirectoryCode, EnrolmentCode
from tierspayant.domain.facts import RENEWAL_PREFIX
from tierspayant.domain.guarantees import Contract
from tierspayant.formats.takeover import (
    RecordKind,
    TakeoverLine,
    TakeoverLineError,
    file_digest,
    read_takeover,
)
from tierspayant.security.crypto import BlindIndexer
from tierspayant.security.identity import nir_index
from tierspayant.services.errors import NotFound, ServiceError
from tierspayant.store import audit
from tierspayant.store import takeover as store
from tierspayant.store.beneficiaries import find_by_nir_index
from tierspayant.store.insurers import insurer_id_by_amc
from tierspayant.store.keys import insurer_scope

ACTION: Final = "takeover.import"


@dataclass(frozen=True, slots=True)
class TakeoverSummary:
    """What one applied file did."""

    lines: int
    beneficiaries: int  # named by the file
    changed: int  # whose imported counters the file changed
    digest: str


class TakeoverRefused(ServiceError):
    """At least one line is refused: nothing was applied. ``errors`` lists them all."""

    def __init__(self, errors: list[TakeoverLineError]) -> None:
        super().__init__(
            EnrolmentCode.TAKEOVER_REFUSED,
            f"{len(errors)} ligne(s) refusée(s) : rien n'a été importé",
            field="file",
        )
        self.errors = errors


def _keys_of(contract: Contract) -> dict[RecordKind, frozenset[str]]:
    counters = {c.counter for g in contract.guarantees for c in g.ceilings}
    renewals = {g.frequency.key for g in contract.guarantees if g.frequency is not None}
    return {RecordKind.COUNTER: frozenset(counters), RecordKind.EQUIPMENT: frozenset(renewals)}


def _use(line: TakeoverLine) -> store.ImportedUse:
    if line.kind is RecordKind.EQUIPMENT:
        return (RENEWAL_PREFIX + line.key, line.day, 0, 1)
    return (line.key, line.day, line.amount_cents, line.units)


def import_takeover(
    platform: Platform, amc_number: str, path: Path, actor: str, today: date | None = None
) -> TakeoverSummary:
    """Check every line of ``path``, then apply the file in one transaction.

    Raises :class:`TakeoverRefused` (every refused line), ``NotFound`` for an unknown
    insurer, ``TakeoverFileError`` for an empty file or a bad header.
    """
    amc = amc_number.strip()
    now = platform.clock()
    day = now.date() if today is None else today
    digest = file_digest(path)
    with platform.engine.begin() as conn:
        insurer_id = insurer_id_by_amc(conn, amc)
        if insurer_id is None:
            raise NotFound(
                DirectoryCode.INSURER_UNKNOWN, "aucun assureur n'a ce numéro AMC", field="insurer"
            )
        wanted, errors, lines = _check(platform, conn, int(insurer_id), amc, path, day)
        if errors:
            audit.append(
                conn,
                at=now,
                actor=actor,
                action=ACTION,
                decision="deny",
                insurer=amc,
                detail={"file_digest": digest, "lines": lines, "refused": len(errors)},
            )
        else:
            before = store.imported_uses(conn, int(insurer_id), wanted)
            changed = {b: uses for b, uses in wanted.items() if before[b] != uses}
            if changed:
                store.replace_imported(conn, int(insurer_id), changed)
            audit.append(
                conn,
                at=now,
                actor=actor,
                action=ACTION,
                decision="allow",
                insurer=amc,
                detail={
                    "file_digest": digest,
                    "lines": lines,
                    "beneficiaries": len(wanted),
                    "changed": len(changed),
                },
            )
    # The refusal's audit event is committed with the transaction above, then raised.
    if errors:
        raise TakeoverRefused(errors)
    return TakeoverSummary(lines, len(wanted), len(changed), digest)


def _check(
    platform: Platform, conn: Connection, insurer_id: int, amc: str, path: Path, day: date
) -> tuple[dict[int, frozenset[store.ImportedUse]], list[TakeoverLineError], int]:
    """The rows each named beneficiary must end with, the refused lines, the line count."""
    indexer = BlindIndexer(platform.keys.active(conn, insurer_scope(amc)))
    contracts: dict[str, dict[RecordKind, frozenset[str]] | None] = {}
    wanted: dict[int, set[store.ImportedUse]] = defaultdict(set)
    seen: dict[tuple[int, RecordKind, str, date], int] = {}
    errors: list[TakeoverLineError] = []
    lines = 0
    for item in read_takeover(path, day):
        lines += 1
        if isinstance(item, TakeoverLineError):
            errors.append(item)
            continue
        record = find_by_nir_index(conn, insurer_id, nir_index(indexer, item.nir, item.birth_rank))
        if record is None:
            errors.append(
                TakeoverLineError(
                    item.line_no,
                    EnrolmentCode.LINE_UNKNOWN_BENEFICIARY,
                    "aucun bénéficiaire de l'assureur n'a ce NIR et ce rang",
                    "nir",
                    "•" * 15,
                )
            )
            continue
        code = record.contract_code
        if code not in contracts:
            contract = platform.catalogues.contract(conn, insurer_id, code)
            contracts[code] = None if contract is None else _keys_of(contract)
        keys = contracts[code]
        if keys is None or item.key not in keys[item.kind]:
            what = "plafond" if item.kind is RecordKind.COUNTER else "fréquence de renouvellement"
            errors.append(
                TakeoverLineError(
                    item.line_no,
                    EnrolmentCode.LINE_COUNTER,
                    f"le contrat {code} n'a pas de {what} de clé {item.key}",
                    "key",
                    item.key,
                )
            )
            continue
        slot = (record.id, item.kind, item.key, item.day)
        if slot in seen:
            errors.append(
                TakeoverLineError(
                    item.line_no,
                    EnrolmentCode.LINE_DUPLICATE,
                    f"même bénéficiaire, clé et date qu'à la ligne {seen[slot]}",
                    "key",
                    item.key,
                )
            )
            continue
        seen[slot] = item.line_no
        wanted[record.id].add(_use(item))
    return {b: frozenset(u) for b, u in wanted.items()}, errors, lines
