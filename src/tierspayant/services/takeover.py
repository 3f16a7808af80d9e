"""Import the takeover file of an insurer moved to the platform mid-year.

What its members already consumed of their ceilings and counters, and the dates of their
last covered equipment, become counter history (``store/takeover.py``), read by every
calculation, prior authorisation and adjudication like the history of accepted invoices.
Its open agreements become granted prior authorisations, honoured by adjudication.

All or nothing per file: every line is checked first (its own values, then the
beneficiary in the insurer's base, the key in the beneficiary's contract, duplicates);
one refused line refuses the file and nothing is written. Idempotent: each beneficiary
the file names ends with exactly the file's rows, so the same file twice changes
nothing. Every run, applied or refused, leaves one audit event (counts and the file's
digest, never an identity).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import DirectoryCode, EnrolmentCode
from tierspayant.domain.facts import RENEWAL_PREFIX
from tierspayant.domain.guarantees import Contract
from tierspayant.domain.prior_auth import PRIOR_AUTH_DOMAINS, PriorAuthStatus
from tierspayant.formats.takeover import (
    RecordKind,
    TakeoverLine,
    TakeoverLineError,
    file_digest,
    read_takeover,
)
from tierspayant.security.crypto import BlindIndexer
from tierspayant.security.identity import member_index, nir_index
from tierspayant.services.errors import NotFound, ServiceError
from tierspayant.store import audit, prior_auth
from tierspayant.store import takeover as store
from tierspayant.store.beneficiaries import (
    BeneficiaryRecord,
    find_by_member_index,
    find_by_nir_index,
)
from tierspayant.store.claims import lock_allocation
from tierspayant.store.insurers import insurer_id_by_amc
from tierspayant.store.keys import insurer_scope
from tierspayant.store.prior_auth import AgreementRow
from tierspayant.store.providers import provider_by_am

ACTION: Final = "takeover.import"
REQUEST_KEY_PREFIX: Final = "takeover:"  # the request key of an imported agreement


@dataclass(frozen=True, slots=True)
class TakeoverSummary:
    """What one applied file did."""

    lines: int
    beneficiaries: int  # named by the file
    changed: int  # whose imported counters the file changed
    digest: str
    agreements: int = 0  # open agreements newly recorded


class TakeoverRefused(ServiceError):
    """At least one line is refused: nothing was applied. ``errors`` lists them all."""

    def __init__(self, errors: list[TakeoverLineError]) -> None:
        super().__init__(
            EnrolmentCode.TAKEOVER_REFUSED,
            f"{len(errors)} ligne(s) refusée(s) : rien n'a été importé ("
            + ", ".join(f"ligne {e.line_no} {e.code}" for e in errors[:3])
            + (", …)" if len(errors) > 3 else ")"),
            field="file",
        )
        self.errors = errors


def _keys_of(contract: Contract) -> dict[RecordKind, frozenset[str]]:
    counters = {c.counter for g in contract.guarantees for c in g.ceilings}
    renewals = {g.frequency.key for g in contract.guarantees if g.frequency is not None}
    families = {g.family for g in contract.guarantees if g.domain in PRIOR_AUTH_DOMAINS}
    return {
        RecordKind.COUNTER: frozenset(counters),
        RecordKind.EQUIPMENT: frozenset(renewals),
        RecordKind.AGREEMENT: frozenset(families - {"*"}),
    }


def _domain_of(contract: Contract, family: str) -> str:
    return next(
        g.domain.value
        for g in contract.guarantees
        if g.family == family and g.domain in PRIOR_AUTH_DOMAINS
    )


@dataclass(frozen=True, slots=True)
class _Agreement:
    """An agreement line, checked: what its row will hold."""

    number: str
    provider_id: int
    beneficiary_id: int
    domain: str
    care_date: date
    valid_until: date
    guaranteed_cents: int
    lines: str  # JSON, as prior authorisations store their lines

    def same_as(self, row: AgreementRow) -> bool:
        return (
            row.request_key == REQUEST_KEY_PREFIX + self.number
            and (row.provider_id, row.beneficiary_id, row.domain, row.care_date)
            == (self.provider_id, self.beneficiary_id, self.domain, self.care_date)
            and (row.valid_until, int(row.guaranteed_cents), row.lines)
            == (self.valid_until, self.guaranteed_cents, self.lines)
        )


def _agreement_of(
    line: TakeoverLine, provider_id: int, beneficiary_id: int, domain: str
) -> _Agreement:
    assert line.agreement is not None
    assert line.valid_until is not None
    lines = json.dumps(
        [
            {
                "act_code": "REPRISE",
                "family": line.key,
                "quantity": line.units,
                "billed_cents": line.amount_cents,
                "guaranteed_cents": line.amount_cents,
            }
        ],
        sort_keys=True,
    )
    return _Agreement(
        line.agreement,
        provider_id,
        beneficiary_id,
        domain,
        line.day,
        line.valid_until,
        line.amount_cents,
        lines,
    )


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
        lock_allocation(conn)  # agreement ids, and one takeover at a time
        wanted, agreements, errors, lines = _check(platform, conn, int(insurer_id), amc, path, day)
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
            for agreement in agreements:
                _record(conn, int(insurer_id), agreement, now, actor)
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
                    "agreements": len(agreements),
                },
            )
    # The refusal's audit event is committed with the transaction above, then raised.
    if errors:
        raise TakeoverRefused(errors)
    return TakeoverSummary(lines, len(wanted), len(changed), digest, len(agreements))


def _record(conn: Connection, insurer_id: int, a: _Agreement, now: datetime, actor: str) -> None:
    prior_auth.insert_agreement(
        conn,
        AgreementRow(
            insurer_id=insurer_id,
            id=prior_auth.next_agreement_id(conn),
            agreement_number=a.number,
            provider_id=a.provider_id,
            beneficiary_id=a.beneficiary_id,
            request_key=REQUEST_KEY_PREFIX + a.number,
            domain=a.domain,
            care_date=a.care_date,
            status=PriorAuthStatus.GRANTED.value,
            reason_code=None,
            reason=None,
            valid_until=a.valid_until,
            guaranteed_cents=a.guaranteed_cents,
            lines=a.lines,
            requested_at=now,
            decided_at=now,
            decided_by=actor,
            request_digest=None,
        ),
    )


def _designated(
    conn: Connection, insurer_id: int, indexer: BlindIndexer, line: TakeoverLine
) -> BeneficiaryRecord | None:
    """The one beneficiary of the line's NIR and rank, or of its member number, birth date
    and rank; None for nobody (or twins the line cannot tell apart)."""
    if line.nir is not None:
        return find_by_nir_index(conn, insurer_id, nir_index(indexer, line.nir, line.birth_rank))
    assert line.member_number is not None
    assert line.birth_date is not None
    found = [
        c
        for c in find_by_member_index(
            conn, insurer_id, member_index(indexer, line.member_number, line.birth_date)
        )
        if c.birth_rank == line.birth_rank
    ]
    return found[0] if len(found) == 1 else None


def _check(
    platform: Platform, conn: Connection, insurer_id: int, amc: str, path: Path, day: date
) -> tuple[dict[int, frozenset[store.ImportedUse]], list[_Agreement], list[TakeoverLineError], int]:
    """The rows each named beneficiary must end with, the agreements to record (those not
    recorded yet), the refused lines, the line count."""
    indexer = BlindIndexer(platform.keys.active(conn, insurer_scope(amc)))
    contracts: dict[str, dict[RecordKind, frozenset[str]] | None] = {}
    wanted: dict[int, set[store.ImportedUse]] = defaultdict(set)
    seen: dict[tuple[int, RecordKind, str, date], int] = {}
    numbers: dict[str, int] = {}
    agreements: list[_Agreement] = []
    errors: list[TakeoverLineError] = []
    lines = 0
    for item in read_takeover(path, day):
        lines += 1
        if isinstance(item, TakeoverLineError):
            errors.append(item)
            continue
        record = _designated(conn, insurer_id, indexer, item)
        if record is None:
            errors.append(
                TakeoverLineError(
                    item.line_no,
                    EnrolmentCode.LINE_UNKNOWN_BENEFICIARY,
                    "aucun bénéficiaire de l'assureur n'a ces identifiants",
                    "nir" if item.nir is not None else "member_number",
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
            what = {
                RecordKind.COUNTER: "plafond",
                RecordKind.EQUIPMENT: "fréquence de renouvellement",
                RecordKind.AGREEMENT: "garantie soumise à accord",
            }[item.kind]
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
        if item.kind is RecordKind.AGREEMENT:
            assert item.agreement is not None
            assert item.provider is not None
            provider = provider_by_am(conn, item.provider)
            if provider is None:
                errors.append(
                    TakeoverLineError(
                        item.line_no,
                        EnrolmentCode.LINE_PROVIDER,
                        "aucun professionnel n'a ce numéro AM",
                        "provider",
                        item.provider,
                    )
                )
                continue
            if item.agreement in numbers:
                errors.append(
                    TakeoverLineError(
                        item.line_no,
                        EnrolmentCode.LINE_DUPLICATE,
                        f"même numéro d'accord qu'à la ligne {numbers[item.agreement]}",
                        "agreement",
                        item.agreement,
                    )
                )
                continue
            numbers[item.agreement] = item.line_no
            contract = platform.catalogues.contract(conn, insurer_id, code)
            assert contract is not None  # its keys were found above
            agreement = _agreement_of(item, provider.id, record.id, _domain_of(contract, item.key))
            existing = prior_auth.agreement_by_number(conn, item.agreement)
            if existing is None:
                agreements.append(agreement)
            elif existing.insurer_id != insurer_id or not agreement.same_as(existing):
                errors.append(
                    TakeoverLineError(
                        item.line_no,
                        EnrolmentCode.LINE_AGREEMENT,
                        "ce numéro d'accord existe déjà avec d'autres valeurs",
                        "agreement",
                        item.agreement,
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
    return {b: frozenset(u) for b, u in wanted.items()}, agreements, errors, lines
