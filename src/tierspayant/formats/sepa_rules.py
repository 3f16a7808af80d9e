"""The EPC implementation-guideline rules a SEPA file must follow, beyond the ISO XSD.

The generic ISO 20022 schemas accept amounts up to 18 digits, any Unicode text and
references of any characters; banks apply the EPC guidelines for SEPA credit transfers
(SCT) and direct debits (SDD), and refuse a file that breaks them. What we can check
without the bank:

- amounts: in euros, two decimals at most, from 0.01 to 999,999,999.99 per transaction
  (``sepa.amount``);
- text (names, remittance information): the SEPA Latin character set
  ``a-z A-Z 0-9 / - ? : ( ) . , ' +`` and space, at most 70 characters for a name and
  140 for unstructured remittance information (``sepa.text``);
- references (message, payment block, end-to-end and mandate ids): 1 to 35 of those
  characters, spaces excepted, neither starting nor ending with ``/`` nor holding ``//``;
  end-to-end ids unique in a file (``sepa.id``);
- accounts: IBAN form and check digits (ISO 13616), BIC form (ISO 9362), creditor identifier
  check digits (``sepa.account``);
- dates: ISO dates, a mandate signed no later than the collection (``sepa.date``);
- totals: each ``NbOfTxs``/``CtrlSum`` equal to what follows (``sepa.totals``).

The writers (:mod:`tierspayant.formats.sepa`) apply these rules to each value before
writing it; :func:`check_file` reads a whole file back, streaming, and lists every rule a
file breaks, so that a test, or an operator with a file from elsewhere, can check it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import ParseError, iterparse

from tierspayant.domain.amount_limits import EPC_MAX_TRANSFER_CENTS
from tierspayant.domain.codes import PaymentCode
from tierspayant.domain.errors import DomainError

NAME_MAX = 70
REMITTANCE_MAX = 140
REFERENCE_MAX = 35
LATIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")
_REFERENCE = re.compile(r"[A-Za-z0-9/\-?:().,'+]{1,35}")
_DECIMAL = re.compile(r"(0|[1-9][0-9]{0,15})(\.[0-9]{1,2})?")
_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")
_BIC = re.compile(r"[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_LETTER_DIGITS = str.maketrans({chr(c): str(c - 55) for c in range(ord("A"), ord("Z") + 1)})
_CREDITOR_ID = re.compile(r"([A-Z]{2})([0-9]{2})([A-Za-z0-9]{3})([A-Za-z0-9]{1,28})")
# Letters NFKD does not take apart, written as the EPC's transliteration tables write them.
_LIGATURES = str.maketrans(
    {"ß": "ss", "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "Ø": "O", "ø": "o", "Ł": "L"}
    | {"ł": "l", "Đ": "D", "đ": "d", "Þ": "TH", "þ": "th", "€": "EUR"}
)


# ASCII characters outside the SEPA Latin set become spaces, but "&" a "+".
_TO_LATIN = {c: " " for c in range(128) if chr(c) not in LATIN} | {ord("&"): "+"}


class SepaRuleError(DomainError):
    """A value a SEPA file may not carry under the EPC implementation guidelines."""


def transliterate(value: str, limit: int) -> str:
    """Text in the SEPA Latin character set: accents dropped, ligatures spelt out (``œ`` →
    ``oe``, ``&`` → ``+``), other characters turned to spaces, at most ``limit`` long."""
    if not value.isascii():
        plain = unicodedata.normalize("NFKD", value.translate(_LIGATURES))
        value = plain.encode("ascii", "ignore").decode("ascii")
    cleaned = value.translate(_TO_LATIN)
    return " ".join(cleaned.split())[:limit] or "NA"


def check_amount(cents: int, field: str) -> int:
    """A transaction amount: 1 cent to 999,999,999.99 EUR (EPC rulebooks)."""
    if not 1 <= cents <= EPC_MAX_TRANSFER_CENTS:
        raise SepaRuleError(
            PaymentCode.SEPA_AMOUNT,
            f"{field}: {cents} cents is outside 0.01 to 999999999.99 EUR, the EPC limits of "
            "one SEPA transaction",
            field=field,
        )
    return cents


def check_text(value: str, limit: int, field: str) -> str:
    """Text already in the SEPA Latin set and within ``limit`` characters."""
    bad = sorted({c for c in value if c not in LATIN})
    if not value or bad or len(value) > limit:
        raise SepaRuleError(
            PaymentCode.SEPA_TEXT,
            f"{field}: 1 to {limit} characters of the SEPA Latin set"
            + (f", not {''.join(bad)!r}" if bad else f", got {len(value)}"),
            field=field,
        )
    return value


def check_reference(value: str, field: str) -> str:
    """A reference: 1 to 35 SEPA characters without space, no leading, trailing or ``//``."""
    if (
        not _REFERENCE.fullmatch(value)
        or value.startswith("/")
        or value.endswith("/")
        or "//" in value
    ):
        raise SepaRuleError(
            PaymentCode.SEPA_ID,
            f"{field}: 1 to {REFERENCE_MAX} of A-Z a-z 0-9 / - ? : ( ) . , ' + without space, "
            "neither starting nor ending with '/' nor holding '//'",
            field=field,
        )
    return value


def check_iban(value: str, field: str) -> str:
    """An IBAN written compact and upper case, with valid ISO 13616 check digits.

    The writer checks every transfer's IBAN, so this is the arithmetic alone (a few
    microseconds); the country's length and the French RIB key are checked when an IBAN
    is entered (:func:`tierspayant.domain.identifiers.bank.parse_iban`).
    """
    if _IBAN.fullmatch(value) is None or _mod97(value[4:] + value[:4]) != 1:
        raise SepaRuleError(
            PaymentCode.SEPA_ACCOUNT,
            f"{field}: not an IBAN (country, check digits, 11 to 30 capital letters or "
            "digits, ISO 13616 check digits)",
            field=field,
        )
    return value


def _mod97(text: str) -> int:
    return int(text.upper().translate(_LETTER_DIGITS)) % 97


def check_bic(value: str, field: str) -> str:
    """A BIC's form (ISO 9362): bank, country, location and an optional branch; whether
    the country exists is checked when the BIC is entered (``parse_bic``)."""
    if _BIC.fullmatch(value) is None:
        raise SepaRuleError(
            PaymentCode.SEPA_ACCOUNT,
            f"{field}: a BIC is 4 letters (bank), 2 letters (country), 2 letters or digits "
            "(location) and an optional 3 (branch)",
            field=field,
        )
    return value


def check_creditor_id(value: str, field: str) -> str:
    """A SEPA creditor identifier: country, check digits (ISO 7064 mod 97-10 over the
    national identifier, the country and ``00``), business code, national identifier."""
    match = _CREDITOR_ID.fullmatch(value)
    if match is not None and 98 - _mod97(match[4] + match[1] + "00") == int(match[2]):
        return value
    raise SepaRuleError(
        PaymentCode.SEPA_ACCOUNT,
        f"{field}: not a SEPA creditor identifier (country, check digits, business code, "
        "national identifier)",
        field=field,
    )


def check_signature(signed_on: date, collection: date, field: str) -> date:
    if signed_on > collection:
        raise SepaRuleError(
            PaymentCode.SEPA_DATE,
            f"{field}: a mandate signed on {signed_on} cannot be collected on {collection}",
            field=field,
        )
    return signed_on


# --- reading a whole file back ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Violation:
    """One rule a file breaks: its code, where (the element's path) and why."""

    code: str
    where: str
    message: str


def _amount_cents(text: str) -> int | None:
    if not _DECIMAL.fullmatch(text):
        return None
    whole, _, part = text.partition(".")
    return int(whole) * 100 + int((part + "00")[:2])


@dataclass
class _Block:
    """What a ``GrpHdr`` or ``PmtInf`` announced, and what followed it."""

    count: int | None = None
    control: int | None = None
    seen: int = 0
    total: int = 0


_NAMES = {"Nm": NAME_MAX, "Ustrd": REMITTANCE_MAX}
_REFERENCES = frozenset({"MsgId", "PmtInfId", "EndToEndId", "MndtId"})
_DATES = frozenset({"ReqdExctnDt", "ReqdColltnDt", "DtOfSgntr"})


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def check_file(source: Path) -> list[Violation]:
    """Every EPC rule the pain.001 or pain.008 file ``source`` breaks (empty: none).

    Streams the file: memory does not grow with the number of transactions. A document
    type declaration is refused before parsing (no entity is ever expanded).
    """
    with source.open("rb") as handle:
        if b"<!DOCTYPE" in handle.read(4096).upper():
            return [Violation(PaymentCode.SEPA_TEXT, "/", "a SEPA file has no DOCTYPE")]
        handle.seek(0)
        found: list[Violation] = []
        try:
            found.extend(_walk(handle))
        except ParseError as exc:
            found.append(Violation(PaymentCode.SEPA_TEXT, "/", f"not well-formed XML: {exc}"))
    return found


def _walk(source: IO[bytes]) -> Iterator[Violation]:
    path: list[str] = []
    group, block = _Block(), _Block()
    end_to_end: set[str] = set()
    collection: date | None = None
    signatures: list[tuple[str, date]] = []
    # No DOCTYPE (checked by the caller), so the standard parser expands nothing.
    for event, element in iterparse(source, events=("start", "end")):  # noqa: S314
        name = _local(element.tag)
        if event == "start":
            path.append(name)
            if name == "PmtInf":
                block = _Block()
            continue
        where = "/".join(path)
        text = (element.text or "").strip()
        parent = path[-2] if len(path) > 1 else ""
        yield from _check_element(name, parent, where, text, element.attrib, end_to_end)
        if name in ("NbOfTxs", "CtrlSum"):
            target = group if parent == "GrpHdr" else block
            value = int(text) if name == "NbOfTxs" and text.isdigit() else _amount_cents(text)
            if name == "NbOfTxs":
                target.count = value
            else:
                target.control = value
        elif name == "InstdAmt":
            cents = _amount_cents(text) or 0
            for target in (group, block):
                target.seen += 1
                target.total += cents
        elif name in _DATES:
            try:
                day = date.fromisoformat(text)
            except ValueError:
                yield Violation(PaymentCode.SEPA_DATE, where, f"{name}: not a date YYYY-MM-DD")
            else:
                if name == "ReqdColltnDt":
                    collection = day
                elif name == "DtOfSgntr":
                    signatures.append((where, day))
        elif name == "PmtInf":
            yield from _totals(block, where)
        elif name in ("CstmrCdtTrfInitn", "CstmrDrctDbtInitn"):
            yield from _totals(group, where + "/GrpHdr")
        path.pop()
        element.clear()
    for where, signed_on in signatures:
        if collection is not None and signed_on > collection:
            yield Violation(
                PaymentCode.SEPA_DATE, where, f"mandate signed on {signed_on}, after {collection}"
            )


def _check_element(
    name: str,
    parent: str,
    where: str,
    text: str,
    attrib: dict[str, str],
    end_to_end: set[str],
) -> Iterator[Violation]:
    try:
        if name == "InstdAmt":
            if attrib.get("Ccy") != "EUR":
                raise SepaRuleError(PaymentCode.SEPA_AMOUNT, f"{name}: SEPA is in EUR only")
            cents = _amount_cents(text)
            if cents is None:
                raise SepaRuleError(
                    PaymentCode.SEPA_AMOUNT, f"{name}: a decimal amount with 2 decimals at most"
                )
            check_amount(cents, name)
        elif name == "CtrlSum" and _amount_cents(text) is None:
            raise SepaRuleError(
                PaymentCode.SEPA_AMOUNT, f"{name}: a decimal amount with 2 decimals at most"
            )
        elif name in _NAMES and parent not in ("FinInstnId",):
            check_text(text, _NAMES[name], name)
        elif name in _REFERENCES:
            check_reference(text, name)
            if name == "EndToEndId":
                if text in end_to_end:
                    raise SepaRuleError(PaymentCode.SEPA_ID, f"{name}: {text} is used twice")
                end_to_end.add(text)
        elif name == "IBAN":
            check_iban(text, name)
        elif name == "BIC":
            check_bic(text, name)
        elif name == "Id" and parent == "Othr" and "/CdtrSchmeId/" in where:
            check_creditor_id(text, "CdtrSchmeId")
    except SepaRuleError as exc:
        yield Violation(exc.code, where, exc.message)


def _totals(block: _Block, where: str) -> Iterator[Violation]:
    if block.count is not None and block.count != block.seen:
        yield Violation(
            PaymentCode.SEPA_TOTALS, where, f"NbOfTxs {block.count} but {block.seen} transactions"
        )
    if block.control is not None and block.control != block.total:
        yield Violation(
            PaymentCode.SEPA_TOTALS,
            where,
            f"CtrlSum {block.control} cents but the transactions sum to {block.total}",
        )
