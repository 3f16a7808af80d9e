"""Tiers payant cards: signing keys, issue and revocation (checking a scanned card is in
:mod:`tierspayant.services.card_scans`).

A card is issued per family (beneficiaries sharing a member number) and year. Its 2D code
carries a payload signed with the insurer's Ed25519 card-signing key
(:mod:`tierspayant.security.cardsig`): provider software verifies it offline with the
keys published at ``GET /v1/card-keys``; the platform verifies it again at each lookup,
with what only it knows: the card's status, its secret's digest and the family binding.

The family binding is ``HMAC(insurer key, family index)``: it names the family to the
platform, and to nobody else, because the member number (sometimes derived from a NIR)
must not travel in a code that provider software logs and sends with every request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import shutil
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import CardCode
from tierspayant.formats import harmonised_card as harmonised
from tierspayant.formats.card_pdf import (
    CardPrint,
    PrintedBeneficiary,
    PrintedContract,
    PrintedDomain,
    write_card,
)
from tierspayant.security import cardsig
from tierspayant.security.audit import subject_pseudonym
from tierspayant.security.cardsig import CardProofError
from tierspayant.security.crypto import BlindIndexer, DataKeys, FieldCipher
from tierspayant.security.identity import family_index, open_column
from tierspayant.services.canaries import canary_mark, canary_touched
from tierspayant.services.errors import Conflict, NotFound, ServiceError
from tierspayant.services.insurers import Insurer, get_insurer
from tierspayant.store import audit
from tierspayant.store import cards as store
from tierspayant.store.beneficiaries import BeneficiaryRecord, family_members
from tierspayant.store.keys import insurer_scope

BINDING_PURPOSE = "card.family"
ISSUE_PURPOSE = "card.issue"
_DOMAIN_ORDER = {d: i for i, d in enumerate(CareDomain)}


@dataclass(frozen=True, slots=True)
class IssueSummary:
    insurer: str
    year: int
    cards: int
    superseded: int
    families_without_rights: int
    canaries_skipped: int
    directory: Path


# --------------------------------------------------------------------------- keys


def family_binding(keys: DataKeys, idx_family: bytes) -> bytes:
    """The family binding of a card: keyed, so only the platform can compute or test it."""
    key = keys.derive(BINDING_PURPOSE)
    return hmac.new(key, b"family\x00" + idx_family, hashlib.sha256).digest()[
        : cardsig.BINDING_BYTES
    ]


def _wrap_context(amc_number: str, key_id: str) -> bytes:
    return f"tierspayant.cardkey.v1|{amc_number}|{key_id}".encode("ascii")


def create_signing_key(platform: Platform, conn: Connection, insurer: Insurer) -> str:
    """Make a new active card-signing key for ``insurer``; return its key id.

    The private key is stored wrapped by the key-encryption key, bound to the insurer
    and the key id; earlier keys stay published so cards they signed keep verifying.
    """
    key = cardsig.new_signing_key()
    public = cardsig.public_bytes(key)
    kid = cardsig.key_id(public)
    provider = platform.key_provider
    store.insert_signing_key(
        conn,
        insurer_id=insurer.id,
        key_id=kid,
        public_key=public,
        wrapped_private=provider.wrap(
            cardsig.private_bytes(key), _wrap_context(insurer.amc_number, kid)
        ),
        kek_id=provider.kek_id,
        now=platform.now(),
    )
    return kid


def _signing_key(
    platform: Platform, conn: Connection, insurer: Insurer
) -> tuple[str, Ed25519PrivateKey]:
    row = store.active_signing_key(conn, insurer.id)
    if row is None:
        create_signing_key(platform, conn, insurer)
        row = store.active_signing_key(conn, insurer.id)
        assert row is not None
    raw = platform.key_provider.unwrap(
        row.wrapped_private, _wrap_context(insurer.amc_number, row.key_id)
    )
    return row.key_id, cardsig.load_private(raw)


def rotate_signing_key(platform: Platform, amc_number: str, actor: str) -> str:
    """Start signing new cards with a fresh key (cards already issued stay valid)."""
    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, amc_number)
        kid = create_signing_key(platform, conn, insurer)
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="card.key_rotate",
            insurer=insurer.amc_number,
            decision="allow",
            detail={"key_id": kid},
        )
    return kid


def public_keys(platform: Platform) -> list[store.PublishedKey]:
    """The card-signing public keys provider software verifies cards with."""
    with platform.engine.connect() as conn:
        return store.published_keys(conn)


# --------------------------------------------------------------------------- issue


class _Issuer:
    """Issues the cards of one insurer and year, inside one transaction."""

    def __init__(
        self, platform: Platform, conn: Connection, insurer: Insurer, year: int, directory: Path
    ) -> None:
        self.platform = platform
        self.conn = conn
        self.insurer = insurer
        self.year = year
        self.directory = directory
        self.first_day = date(year, 1, 1)
        self.last_day = date(year, 12, 31)
        scope = insurer_scope(insurer.amc_number)
        self.scope = scope
        self.keys = platform.keys.active(conn, scope)
        self.key_id, self.signer = _signing_key(platform, conn, insurer)
        self.operator = platform.operator_keys()
        self.pseudonym_key = self.operator.derive("audit.subject")
        self.canary_marks = {m for m, _, _ in store.marks_of(conn, insurer.id)}
        self.ciphers: dict[int, FieldCipher] = {}
        self.superseded = 0
        # The insurer's routing fields, from its newest catalogue (empty if undeclared).
        catalogue = platform.catalogues.latest(conn, insurer.id)
        routing = None if catalogue is None else catalogue.card
        self.convention_type = "" if routing is None else routing.convention_type
        self.routing_criterion = "" if routing is None else routing.routing_criterion

    def is_canary(self, record: BeneficiaryRecord) -> bool:
        mark = canary_mark(self.operator, self.insurer.id, record.id, record.idx_nir)
        return record.is_canary or mark in self.canary_marks

    def covered(self, members: Sequence[BeneficiaryRecord]) -> list[BeneficiaryRecord]:
        """The members with rights at some point of the year."""
        return [
            m
            for m in members
            if m.coverage_start <= self.last_day
            and (m.coverage_end is None or m.coverage_end >= self.first_day)
        ]

    def _open(self, record: BeneficiaryRecord, column: str) -> str:
        cipher = self.ciphers.get(record.key_version)
        if cipher is None:
            keys = self.platform.keys.version(self.conn, self.scope, record.key_version)
            cipher = self.ciphers[record.key_version] = FieldCipher(keys)
        blob = getattr(record, f"{column}_ct")
        return open_column(cipher, self.insurer.id, record.idx_nir, column, blob)

    def _contracts(self, members: Sequence[BeneficiaryRecord]) -> tuple[PrintedContract, ...]:
        printed = []
        for code in sorted({m.contract_code for m in members}):
            contract = self.platform.catalogues.contract(self.conn, self.insurer.id, code)
            if contract is None:
                printed.append(PrintedContract(code, "", ()))
                continue
            domains = sorted(contract.domains.items(), key=lambda kv: _DOMAIN_ORDER[kv[0]])
            printed.append(
                PrintedContract(
                    code,
                    contract.label,
                    tuple(
                        PrintedDomain(d.value, t.tiers_payant, t.coverage_code) for d, t in domains
                    ),
                )
            )
        return tuple(printed)

    def _harmonised(
        self,
        members: Sequence[BeneficiaryRecord],
        people: Sequence[PrintedBeneficiary],
        contracts: Sequence[PrintedContract],
        member_number: str,
        valid: tuple[date, date],
    ) -> harmonised.HarmonisedCard:
        """The standard box and each member's rights (from the member's own contract).

        The card shows "R" only when every contract on it is a contrat responsable.
        Type de convention and CSR come from the ``card`` block of the insurer's newest
        catalogue; an insurer that declares none gets them printed empty (the harmonised
        layout keeps their labels even when empty).
        """
        by_code = {c.code: c for c in contracts}
        responsable = True
        for code in by_code:
            contract = self.platform.catalogues.contract(self.conn, self.insurer.id, code)
            responsable = responsable and contract is not None and contract.responsable
        rows = tuple(
            harmonised.BeneficiaryRights(
                rank=member.birth_rank,
                birth_date=person.birth_date,
                rights=tuple(
                    harmonised.Right(CareDomain(d.domain), d.tiers_payant, d.coverage_code)
                    for d in by_code[member.contract_code].domains
                ),
            )
            for member, person in zip(members, people, strict=True)
        )
        return harmonised.HarmonisedCard(
            amc_number=self.insurer.amc_number,
            convention_type=self.convention_type,
            routing_criterion=self.routing_criterion,
            member_number=member_number,
            valid_from=valid[0],
            valid_until=valid[1],
            responsable=responsable,
            beneficiaries=rows,
        )

    def issue(self, members: Sequence[BeneficiaryRecord], actor: str) -> str:
        """Issue the card of one family (canaries already excluded); return its serial."""
        first = members[0]
        valid_from = max(self.first_day, min(m.coverage_start for m in members))
        ends = [m.coverage_end for m in members]
        valid_until = (
            self.last_day
            if any(e is None for e in ends)
            else min(self.last_day, max(e for e in ends if e is not None))
        )
        binding = family_binding(self.keys, first.idx_family)
        secret = secrets.token_bytes(cardsig.SECRET_BYTES)
        payload = cardsig.CardPayload(
            amc_number=self.insurer.amc_number,
            key_id=self.key_id,
            serial=secrets.token_bytes(cardsig.SERIAL_BYTES),
            valid_from=valid_from,
            valid_until=valid_until,
            family_binding=binding,
            secret=secret,
        )
        serial = payload.serial_text
        now = self.platform.now()
        self.superseded += store.insert_card(
            self.conn,
            store.CardRow(
                self.insurer.id,
                serial,
                self.key_id,
                binding,
                cardsig.secret_digest(secret),
                self.year,
                valid_from,
                valid_until,
                "active",
            ),
            now=now,
        )
        people = tuple(
            PrintedBeneficiary(
                self._open(m, "first_name"),
                date.fromisoformat(self._open(m, "birth_date")),
                m.birth_rank,
            )
            for m in members
        )
        member_number = self._open(first, "member_number")
        contracts = self._contracts(members)
        box = self._harmonised(members, people, contracts, member_number, (valid_from, valid_until))
        proof = cardsig.sign(payload, self.signer)
        signed = harmonised.signed_part(box, proof)
        write_card(
            CardPrint(
                insurer_name=self.insurer.name,
                amc_number=self.insurer.amc_number,
                member_number=member_number,
                serial=serial,
                valid_from=valid_from,
                valid_until=valid_until,
                beneficiaries=people,
                contracts=contracts,
                qr_text=proof,
                harmonised=box,
                datamatrix_text=signed + cardsig.sign_harmonised(signed, self.signer),
            ),
            self.directory,
        )
        audit.append(
            self.conn,
            at=now,
            actor=actor,
            action="card.issue",
            purpose=ISSUE_PURPOSE,
            subject=subject_pseudonym(self.pseudonym_key, self.insurer.amc_number, str(first.id)),
            insurer=self.insurer.amc_number,
            decision="allow",
            detail={"serial": serial, "year": self.year, "beneficiaries": len(members)},
        )
        return serial


def _check_year(platform: Platform, year: int) -> None:
    today = platform.today()
    if not today.year - 1 <= year <= today.year + 1:
        raise ServiceError(
            CardCode.YEAR, "cards are issued for last year, this year or next year", field="year"
        )


def _staging(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".issuing-{secrets.token_hex(6)}"
    staging.mkdir()
    return staging


def _publish(staging: Path, directory: Path) -> None:
    """Move the PDFs of a committed run into place (one file at a time: flat memory)."""
    for entry in staging.iterdir():
        entry.replace(directory / entry.name)
    staging.rmdir()


def issue_cards(
    platform: Platform,
    amc_number: str,
    year: int,
    directory: Path,
    actor: str,
    *,
    on_total: Callable[[int], None] | None = None,
    on_family: Callable[[], None] | None = None,
) -> IssueSummary:
    """Issue a card to every family with rights during ``year``; supersede older cards.

    Families stream from the database one at a time. PDFs are written to a hidden
    directory and moved into ``directory`` only after the commit: a failed run leaves
    neither cards in the database nor PDFs whose codes would not verify.
    """
    _check_year(platform, year)
    staging = _staging(directory)
    try:
        with platform.engine.begin() as conn:
            insurer = get_insurer(conn, amc_number)
            if on_total is not None:
                on_total(store.count_families(conn, insurer.id))
            issuer = _Issuer(platform, conn, insurer, year, staging)
            issued = without_rights = canaries = 0
            # The family query streams on its own connection while this one writes.
            with (
                platform.engine.connect() as reader,
                closing(store.families(reader, insurer.id)) as all_families,
            ):
                for family in all_families:
                    real = [m for m in family if not issuer.is_canary(m)]
                    canaries += len(family) - len(real)
                    members = issuer.covered(real)
                    if members:
                        issuer.issue(members, actor)
                        issued += 1
                    elif real:
                        without_rights += 1
                    if on_family is not None:
                        on_family()
        _publish(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return IssueSummary(
        insurer.amc_number, year, issued, issuer.superseded, without_rights, canaries, directory
    )


def issue_family_card(
    platform: Platform,
    amc_number: str,
    member_number: str,
    year: int,
    directory: Path,
    actor: str,
) -> str:
    """Issue (or replace) the card of one family, named by its member number.

    Reaching a canary this way is a canary touch: alert, no card, and the same refusal
    as for a member number nobody holds.
    """
    _check_year(platform, year)
    staging = _staging(directory)
    try:
        with platform.engine.begin() as conn:
            insurer = get_insurer(conn, amc_number)
            issuer = _Issuer(platform, conn, insurer, year, staging)
            idx = family_index(BlindIndexer(issuer.keys), member_number)
            family = family_members(conn, insurer.id, idx)
            touched = canary_touched(
                platform, conn, insurer.id, [m.id for m in family], actor, ISSUE_PURPOSE
            )
            members = issuer.covered([m for m in family if m.id not in touched])
            serial = issuer.issue(members, actor) if members and not touched else None
        if serial is None:
            raise NotFound(
                CardCode.FAMILY_UNKNOWN, "no family with rights this year has this number"
            )
        _publish(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return serial


# --------------------------------------------------------------------------- revoke


def revoke_card(platform: Platform, amc_number: str, serial: str, reason: str, actor: str) -> None:
    """Revoke an active card (lost, stolen, member left). Lookups with it are refused."""
    reason = reason.strip()
    if not 3 <= len(reason) <= 200:
        raise ServiceError(CardCode.REASON, "give a reason of 3 to 200 characters", field="reason")
    try:
        normalised = cardsig.serial_text(cardsig.serial_bytes(serial))
    except CardProofError:
        raise ServiceError(
            CardCode.SERIAL, "a card serial is 16 base32 characters", field="serial"
        ) from None
    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, amc_number)
        card = store.card_by_serial(conn, insurer.id, normalised)
        if card is None:
            raise NotFound(CardCode.UNKNOWN, "this insurer has no card with this serial")
        if not store.revoke_card(conn, insurer.id, normalised, reason, platform.now()):
            raise Conflict(CardCode.NOT_ACTIVE, f"the card is already {card.status}")
        audit.append(
            conn,
            at=platform.now(),
            actor=actor,
            action="card.revoke",
            insurer=insurer.amc_number,
            decision="allow",
            detail={"serial": normalised, "reason": reason},
        )
