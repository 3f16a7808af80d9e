"""Finding a beneficiary from what the card shows: exact match on blind indexes only.

There is no other way into the beneficiary table from a provider's request: no search, no
partial match, no list. Unknown person, wrong birth date and wrong rank all give ``None``,
after the same work, so the caller cannot tell them apart by the time it takes: when no
row matches, a decoy row of the insurer goes through every step a matched row goes
through (record built from its columns, canary mark, birth-date decryption under the
row's associated data, audit pseudonym), and one index query runs either way.
``bench/bench_identification.py`` measures both.

A row reached through its index is checked against the canary marks
(:mod:`tierspayant.services.canaries`) whether or not the birth date then matches: nobody
holds a canary's identifiers legitimately, so reaching its index is the signal.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import EligibilityCode
from tierspayant.domain.errors import EligibilityError
from tierspayant.domain.identifiers import parse_amc_number, parse_birth_rank, parse_nir
from tierspayant.security.audit import subject_pseudonym
from tierspayant.security.crypto import BlindIndexer, DataKeys, FieldCipher
from tierspayant.security.identity import column_aad, member_index, nir_index, open_column
from tierspayant.services.canaries import is_canary
from tierspayant.services.insurers import Insurer, cached_insurer
from tierspayant.store.beneficiaries import (
    BeneficiaryRecord,
    find_by_member_index,
    record_from_row,
)
from tierspayant.store.beneficiary_reads import find_by_nir_index_padded
from tierspayant.store.keys import insurer_scope


@dataclass(frozen=True, slots=True)
class CardData:
    """What the provider read from the patient's card (or typed from it)."""

    amc_number: str
    birth_date: date
    nir: str | None = None
    birth_rank: int | None = None
    member_number: str | None = None

    def normalised(self) -> CardData:
        """Validate every identifier; raise a specific error for a malformed one."""
        amc = parse_amc_number(self.amc_number)
        nir = parse_nir(self.nir).value if self.nir else None
        rank = parse_birth_rank(self.birth_rank) if self.birth_rank is not None else None
        member = self.member_number.strip().upper() if self.member_number else None
        if nir is None and not member:
            raise EligibilityError(
                EligibilityCode.IDENTIFIERS_MISSING,
                "send the NIR with the birth rank, or the member number",
                field="nir",
            )
        if nir is not None and rank is None:
            raise EligibilityError(
                EligibilityCode.BIRTH_RANK_MISSING,
                "the birth rank is required with the NIR",
                field="birth_rank",
            )
        return CardData(amc, self.birth_date, nir, rank, member)


@dataclass(frozen=True, slots=True)
class Identified:
    """A beneficiary matched by card data. ``subject`` is the audit pseudonym.

    ``canary`` is True for a synthetic beneficiary: the caller must raise the alert
    (:func:`tierspayant.services.canaries.canary_touched`, or the guard's canary outcome).
    """

    insurer: Insurer
    record: BeneficiaryRecord
    birth_date: date
    subject: str
    canary: bool = False


@dataclass(frozen=True, slots=True)
class Identification:
    """The full outcome of one identification.

    ``found`` is what the caller may answer about; ``canary_subject`` is set when the
    identifiers reached a canary's row, even if the birth date then did not match.
    """

    insurer: Insurer
    found: Identified | None
    canary_subject: str | None = None


@lru_cache(maxsize=256)
def _indexer(keys: DataKeys) -> BlindIndexer:
    return BlindIndexer(keys)


@lru_cache(maxsize=256)
def _cipher(keys: DataKeys) -> FieldCipher:
    return FieldCipher(keys)


class _DecoyRow:
    """The columns of a decoy beneficiary, read like a selected row (``row._mapping``)."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self._mapping = mapping


# Decrypted on a miss like a matched row's birth date; a miss answers None before any
# comparison, so its value never matters.
_DECOY_BIRTH = "1899-12-31"


@lru_cache(maxsize=256)
def _decoy(keys: DataKeys, insurer_id: int) -> _DecoyRow:
    """A row of the insurer that no card designates: id 0 (real ids start at 1), a random
    NIR index, its birth date sealed like a real row's, under the insurer's active key."""
    idx_nir = secrets.token_bytes(16)
    cipher = _cipher(keys)
    sealed = cipher.encrypt(_DECOY_BIRTH, column_aad(insurer_id, idx_nir, "birth_date"))
    return _DecoyRow(
        {
            "insurer_id": insurer_id,
            "id": 0,
            "idx_nir": idx_nir,
            "idx_member": secrets.token_bytes(16),
            "idx_family": secrets.token_bytes(16),
            "key_version": keys.version,
            "nir_ct": sealed,
            "member_number_ct": sealed,
            "birth_date_ct": sealed,
            "last_name_ct": sealed,
            "first_name_ct": sealed,
            "birth_rank": 1,
            "sex": "F",
            "quality": "member",
            "birth_year": 1899,
            "contract_code": "",
            "coverage_start": date(1900, 1, 1),
            "coverage_end": None,
            "css": False,
            "is_canary": False,
            "row_digest": secrets.token_bytes(32),
            "updated_at": datetime(1900, 1, 1, tzinfo=UTC),
        }
    )


def identify(
    platform: Platform, conn: Connection, card: CardData
) -> tuple[Insurer, Identified | None]:
    """Find the one beneficiary that the card data designates, or None."""
    outcome = identify_detailed(platform, conn, card)
    return outcome.insurer, outcome.found


def identify_detailed(platform: Platform, conn: Connection, card: CardData) -> Identification:
    """Like :func:`identify`, also saying whether a canary's row was reached."""
    insurer = cached_insurer(platform, conn, card.amc_number)
    scope = insurer_scope(insurer.amc_number)
    keys = platform.keys.active(conn, scope)
    indexer = _indexer(keys)
    candidates: list[BeneficiaryRecord]
    pad: BeneficiaryRecord | None = None
    if card.nir is not None and card.birth_rank is not None:
        index = nir_index(indexer, card.nir, card.birth_rank)
        found, matched = find_by_nir_index_padded(conn, insurer.id, index)
        candidates = [found] if found is not None and matched else []
        pad = None if matched else found
    else:
        assert card.member_number is not None
        candidates = find_by_member_index(
            conn, insurer.id, member_index(indexer, card.member_number, card.birth_date)
        )
        if card.birth_rank is not None:
            candidates = [c for c in candidates if c.birth_rank == card.birth_rank]
    # None, or twins without a rank to tell them apart: no answer either way, after the
    # same steps on another row (the pad the query read, else the decoy) as on a match.
    matched = len(candidates) == 1
    if matched:
        record = candidates[0]
    elif pad is not None:
        record = pad
    else:
        record = record_from_row(_decoy(keys, insurer.id))  # type: ignore[arg-type]
    canary = record.is_canary or is_canary(platform, conn, insurer.id, record.id, record.idx_nir)
    row_keys = (
        keys
        if record.key_version == keys.version
        else platform.keys.version(conn, scope, record.key_version)
    )
    birth = open_column(
        _cipher(row_keys), insurer.id, record.idx_nir, "birth_date", record.birth_date_ct
    )
    pseudonym_key = platform.operator_keys().derive("audit.subject")
    subject = subject_pseudonym(pseudonym_key, insurer.amc_number, str(record.id))
    if not matched:
        return Identification(insurer, None)
    canary_subject = subject if canary else None
    if birth != card.birth_date.isoformat():
        return Identification(insurer, None, canary_subject)
    identified = Identified(insurer, record, card.birth_date, subject, canary)
    return Identification(insurer, identified, canary_subject)
