"""A scanned card: the proof a lookup checks, and the decode of what a card's code carries.

The proof (the QR code's ``TP1:`` text, or the harmonised DataMatrix ``TPH1|…`` that embeds
it) is checked with what only the platform knows: the card's status, its secret's digest
and the family binding (:mod:`tierspayant.services.cards` issues them). A text that does
not parse is a misread, never an attack signal; a well-formed code only a forger produces
is. The decode answers what the code carries and whether its signature holds, nothing
about the card's status or its holder.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import CardCode
from tierspayant.formats import harmonised_card as harmonised
from tierspayant.security import cardsig
from tierspayant.security.cardsig import CardProofError
from tierspayant.security.guard import ProofFault
from tierspayant.services.cards import family_binding, public_keys
from tierspayant.services.errors import Unprocessable
from tierspayant.services.insurers import Insurer, get_insurer
from tierspayant.store import audit
from tierspayant.store import cards as store
from tierspayant.store.beneficiaries import BeneficiaryRecord
from tierspayant.store.keys import insurer_scope


class ProofRefused(Exception):
    """A scanned card proof failed a check. ``fault`` says which kind, for the guard."""

    def __init__(
        self, fault: ProofFault, serial: str | None = None, canary_subject: str | None = None
    ) -> None:
        super().__init__(fault.value)
        self.fault = fault
        self.serial = serial
        self.canary_subject = canary_subject


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    """A card proof whose signature, status, validity and secret all checked out."""

    insurer_id: int
    serial: str
    family_binding: bytes


# --------------------------------------------------------------------------- verify


def check_proof(platform: Platform, conn: Connection, text: str, amc_number: str) -> VerifiedProof:
    """Every check of a scanned card that does not need the beneficiary.

    Raises :class:`ProofRefused`: ``MISREAD`` for a text that is not a card code at all
    (wrong prefix, a character outside base45, an impossible length, cut short, fields
    out of range: a reader on another keyboard layout, a partial scan; nothing signed, so
    no attack signal), ``FORGED`` for a well-formed code only a forger produces (unknown
    or retired key, bad signature, unknown serial, wrong secret), ``REVOKED`` for a
    genuine card that no longer counts (revoked, superseded, expired or not yet valid),
    ``MISMATCH`` for a genuine card of another insurer.

    ``text`` is the QR code's ``TP1:`` proof or the harmonised DataMatrix (``TPH1|…``),
    whose embedded ``TP1:`` proof is then the one checked, after the DataMatrix's own
    signature (same key) and the box's agreement with the proof: one scan of either code
    does. A DataMatrix that does not parse, or printed without its proof, is a misread;
    one whose own signature or box fails is forged, like a ``TP1:`` whose signature fails.
    """
    scanned = _scanned_datamatrix(text)
    if scanned is not None:
        text = scanned.proof or ""
    try:
        payload = cardsig.peek(text)
    except CardProofError:
        raise ProofRefused(ProofFault.MISREAD) from None
    serial = payload.serial_text
    if payload.amc_number != amc_number:
        raise ProofRefused(ProofFault.MISMATCH, serial)
    insurer = get_insurer(conn, amc_number)
    key = store.signing_key(conn, insurer.id, payload.key_id)
    if key is None or key.retired_at is not None:
        raise ProofRefused(ProofFault.FORGED, serial)
    try:
        cardsig.verify(text, key.public_key)
        if scanned is not None:
            cardsig.verify_harmonised(scanned.signed_text, scanned.signature or "", key.public_key)
    except CardProofError:
        raise ProofRefused(ProofFault.FORGED, serial) from None
    if scanned is not None and not _box_agrees(scanned.card, payload):
        raise ProofRefused(ProofFault.FORGED, serial)
    card = store.card_by_serial(conn, insurer.id, serial)
    if (
        card is None
        or not hmac.compare_digest(card.secret_digest, cardsig.secret_digest(payload.secret))
        or not hmac.compare_digest(card.family_binding, payload.family_binding)
    ):
        raise ProofRefused(ProofFault.FORGED, serial)
    today = platform.today()
    if card.status != "active" or not card.valid_from <= today <= card.valid_until:
        raise ProofRefused(ProofFault.REVOKED, serial)
    return VerifiedProof(insurer.id, serial, card.family_binding)


def _scanned_datamatrix(text: str) -> harmonised.ScannedCard | None:
    """The decoded DataMatrix when ``text`` is one (``TPH1|``), else None (a QR text).

    :class:`ProofRefused` ``MISREAD`` when it does not parse or carries no proof.
    """
    if not text.startswith(harmonised.PREFIX + harmonised.SEPARATOR):
        return None
    try:
        scanned = harmonised.decode(text)
    except harmonised.Misread:
        raise ProofRefused(ProofFault.MISREAD) from None
    if scanned.proof is None:
        raise ProofRefused(ProofFault.MISREAD)
    return scanned


def _box_agrees(fields: harmonised.HarmonisedCard, payload: cardsig.CardPayload) -> bool:
    """The printed box says what the signed proof says (AMC number, validity)."""
    return (fields.amc_number, fields.valid_from, fields.valid_until) == (
        payload.amc_number,
        payload.valid_from,
        payload.valid_until,
    )


def proof_covers(
    platform: Platform,
    conn: Connection,
    proof: VerifiedProof,
    insurer: Insurer,
    record: BeneficiaryRecord,
) -> bool:
    """Whether the identified beneficiary belongs to the family of the verified card."""
    if record.insurer_id != proof.insurer_id or insurer.id != proof.insurer_id:
        return False
    keys = platform.keys.active(conn, insurer_scope(insurer.amc_number))
    return hmac.compare_digest(family_binding(keys, record.idx_family), proof.family_binding)


# --------------------------------------------------------------------------- decode


class ProofStatus(StrEnum):
    """What a scanned code says of its own signature, checked with the published keys."""

    VALID = "valid"  # signed by a published key of the AMC it names, fields included
    INVALID = "invalid"  # well formed, but the signature or the key does not check out
    ABSENT = "absent"  # a harmonised code printed without the signed proof


@dataclass(frozen=True, slots=True)
class DecodedCard:
    """A scanned card code, decoded: its printed fields (if any) and its proof's status.

    Holds only what the scanned text carries: no lookup, no card status.
    """

    proof: ProofStatus
    fields: harmonised.HarmonisedCard | None = None
    serial: str | None = None
    key_id: str | None = None


def _misread(message: str) -> Unprocessable:
    return Unprocessable(CardCode.MISREAD, message)


def decode_scan(platform: Platform, text: str, actor: str) -> DecodedCard:
    """Decode the text of a card's DataMatrix (``TPH1|…``) or QR code (``TP1:…``).

    Does exactly what provider software can do offline with ``GET /v1/card-keys``: parse,
    then verify the signatures with the published keys. It never reads the card's status
    or secret, so it tells nothing about whether the card is revoked or whose it is: that
    is the lookup's job, under the guard. A text that does not parse is a misread
    (``card.misread``, nothing audited: not an attack signal); a well-formed code whose
    signature fails is audited (``card.decode_refused``) for the security team.
    """
    scanned: harmonised.ScannedCard | None = None
    proof_text: str | None = text
    if not text.startswith(cardsig.PREFIX):
        try:
            scanned = harmonised.decode(text)
        except harmonised.Misread as exc:
            raise _misread(exc.message) from None
        proof_text = scanned.proof
    fields = None if scanned is None else scanned.card
    if proof_text is None:
        return DecodedCard(ProofStatus.ABSENT, fields)
    try:
        payload = cardsig.peek(proof_text)
    except CardProofError as exc:
        raise _misread(exc.message) from None
    serial = payload.serial_text
    if _proof_verifies(platform, payload, proof_text, scanned):
        return DecodedCard(ProofStatus.VALID, fields, serial, payload.key_id)
    platform.audit_writer.append(
        audit.Entry(
            at=platform.now(),
            actor=actor,
            action="card.decode_refused",
            purpose="card_proof",
            insurer=payload.amc_number,
            decision="deny",
            detail={"fault": ProofFault.FORGED.value, "serial": serial},
        )
    )
    return DecodedCard(ProofStatus.INVALID, fields, serial, payload.key_id)


def _proof_verifies(
    platform: Platform,
    payload: cardsig.CardPayload,
    proof_text: str,
    scanned: harmonised.ScannedCard | None,
) -> bool:
    """The proof's signature, the fields' signature, and the fields agree with the proof."""
    key = next(
        (
            k
            for k in public_keys(platform)
            if k.amc_number == payload.amc_number and k.key_id == payload.key_id
        ),
        None,
    )
    if key is None:
        return False
    try:
        cardsig.verify(proof_text, key.public_key)
        if scanned is not None:
            signature = scanned.signature or ""
            cardsig.verify_harmonised(scanned.signed_text, signature, key.public_key)
    except CardProofError:
        return False
    return scanned is None or _box_agrees(scanned.card, payload)
