"""The takeover file: what an insurer's members consumed before it moved to the platform.

An insurer taken over mid-year sends, once, the annual ceilings and counters its members
have already consumed, the dates of their last covered equipment (renewal periods) and
the prior authorisations (agreements) still open, so that the first calculation for them
is right. UTF-8, ``;`` separator, one header row naming the columns (any order), **one
physical line per record**. See ``docs/formats/takeover.md``.

Each line comes out either as a validated :class:`TakeoverLine` or as a
:class:`TakeoverLineError` naming the line, the column, the code and the value (never the
value of an identity column: the NIR and the birth rank are masked). The reader checks
what a line says on its own; whether the beneficiary and the counter key exist is checked
by the import service against the insurer's base and catalogue.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Final

from tierspayant.domain.codes import EnrolmentCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.identifiers.nir import parse_birth_rank, parse_nir_value
from tierspayant.domain.identifiers.professionals import parse_am_number

DELIMITER: Final = ";"
COLUMNS: Final = ("record", "nir", "birth_rank", "key", "date", "amount_cents", "units")
# Needed by agreement lines only: a file without agreements may leave them out.
AGREEMENT_COLUMNS: Final = ("agreement", "provider", "valid_until")
_AGREEMENT_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,23}")
# In place of the NIR: the member number with the birth date (optional columns).
MEMBER_COLUMNS: Final = ("member_number", "birth_date")
IDENTITY_COLUMNS: Final = frozenset({"nir", "birth_rank", *MEMBER_COLUMNS})
_MEMBER_NUMBER = re.compile(r"[A-Z0-9./-]{1,30}")
MAX_LINE_CHARS: Final = 1024  # no valid line comes near it
MAX_AMOUNT_CENTS: Final = 100_000_000  # 1 000 000 €: no annual ceiling is above
MAX_UNITS: Final = 999
_KEY_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_.-")
MAX_KEY_CHARS: Final = 60


class RecordKind(StrEnum):
    """What one line records."""

    COUNTER = "counter"  # consumption of a ceiling's counter on a date
    EQUIPMENT = "equipment"  # the last covered equipment of a renewal frequency
    AGREEMENT = "agreement"  # an open prior authorisation granted by the former insurer


class TakeoverFileError(DomainError):
    """The file as a whole cannot be read (empty, or a bad header)."""


@dataclass(frozen=True, slots=True)
class TakeoverLine:
    """One valid line. ``key`` is a ceiling's counter (``counter``), a renewal
    frequency's key (``equipment``) or the care family an agreement guarantees
    (``agreement``: ``amount_cents`` guaranteed, ``units`` the quantity, ``day`` the care
    date of the quote)."""

    line_no: int
    kind: RecordKind
    nir: str | None = field(repr=False)  # None: designated by member number and birth date
    birth_rank: int = field(repr=False)
    key: str
    day: date
    amount_cents: int
    units: int
    agreement: str | None = None
    provider: str | None = None  # the AM number of the professional it was granted to
    valid_until: date | None = None
    member_number: str | None = field(default=None, repr=False)
    birth_date: date | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class TakeoverLineError:
    """One refused line: where (line, column), why (code, message) and the value given,
    masked for the identity columns."""

    line_no: int
    code: str
    message: str
    column: str | None = None
    value: str = ""


def _masked(column: str | None, value: str) -> str:
    if column in IDENTITY_COLUMNS and value:
        return "•" * len(value)
    return value[:80]


def _error(
    line_no: int, code: str, message: str, column: str | None = None, value: str = ""
) -> TakeoverLineError:
    return TakeoverLineError(line_no, code, message, column, _masked(column, value))


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes, in hex (what the audit event records)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _physical_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            yield line_no, raw.rstrip(b"\r\n")


def _cells(line_no: int, text: str) -> list[str] | TakeoverLineError:
    """The cells of one physical line (a quote left open refuses the line)."""
    try:
        rows = list(csv.reader([text], delimiter=DELIMITER, strict=True))
    except csv.Error:
        return _error(line_no, EnrolmentCode.LINE_QUOTE, "guillemet non fermé")
    if len(rows) != 1:
        return _error(line_no, EnrolmentCode.LINE_QUOTE, "guillemet non fermé")
    return [cell.strip() for cell in rows[0]]


def read_takeover(path: Path, today: date) -> Iterator[TakeoverLine | TakeoverLineError]:
    """Each line of the file, validated (``today``: no date may be after it).

    Raises :class:`TakeoverFileError` when the file is empty or its header is not exactly
    the documented columns (in any order).
    """
    lines = _physical_lines(path)
    order: list[str] | None = None
    for line_no, raw in lines:
        if raw.startswith(b"\xef\xbb\xbf") and line_no == 1:
            raw = raw[3:]
        if not raw.strip():
            continue
        if order is None:
            order = _header(raw)
            continue
        yield _line(line_no, raw, order, today)
    if order is None:
        raise TakeoverFileError(EnrolmentCode.FILE_EMPTY, "le fichier est vide", field="file")


def _header(raw: bytes) -> list[str]:
    try:
        names = [c.strip().lower() for c in raw.decode("utf-8").split(DELIMITER)]
    except UnicodeDecodeError:
        raise TakeoverFileError(
            EnrolmentCode.LINE_ENCODING, "l'en-tête n'est pas en UTF-8", field="file"
        ) from None
    for name in names:
        if name not in (*COLUMNS, *AGREEMENT_COLUMNS, *MEMBER_COLUMNS):
            raise TakeoverFileError(
                EnrolmentCode.FILE_HEADER_UNKNOWN_COLUMN,
                f"colonne inconnue dans l'en-tête : {name[:40]!r}",
                field="file",
            )
    if len(set(names)) != len(names):
        raise TakeoverFileError(
            EnrolmentCode.FILE_HEADER_DUPLICATE_COLUMN,
            "une colonne figure deux fois dans l'en-tête",
            field="file",
        )
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise TakeoverFileError(
            EnrolmentCode.FILE_HEADER_MISSING_COLUMN,
            f"colonnes manquantes dans l'en-tête : {', '.join(missing)}",
            field="file",
        )
    return names


def _line(
    line_no: int, raw: bytes, order: list[str], today: date
) -> TakeoverLine | TakeoverLineError:
    if len(raw) > MAX_LINE_CHARS * 4:
        return _error(line_no, EnrolmentCode.LINE_FIELD_TOO_LARGE, "ligne trop longue")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _error(
            line_no, EnrolmentCode.LINE_ENCODING, f"octet invalide en position {exc.start}"
        )
    if len(text) > MAX_LINE_CHARS:
        return _error(line_no, EnrolmentCode.LINE_FIELD_TOO_LARGE, "ligne trop longue")
    cells = _cells(line_no, text)
    if isinstance(cells, TakeoverLineError):
        return cells
    if len(cells) != len(order):
        return _error(
            line_no,
            EnrolmentCode.LINE_COLUMNS,
            f"{len(cells)} colonnes au lieu de {len(order)}",
        )
    values = dict(zip(order, cells, strict=True))
    return _validate(line_no, values, today)


def _validate(line_no: int, v: dict[str, str], today: date) -> TakeoverLine | TakeoverLineError:
    try:
        kind = RecordKind(v["record"].lower())
    except ValueError:
        return _error(
            line_no,
            EnrolmentCode.LINE_KIND,
            "type attendu : counter, equipment ou agreement",
            "record",
            v["record"],
        )
    member = v.get("member_number", "").upper()
    nir: str | None = None
    birth: date | None = None
    if v["nir"] == "" and member:
        if not _MEMBER_NUMBER.fullmatch(member):
            return _error(
                line_no,
                EnrolmentCode.LINE_MEMBER_NUMBER,
                "numéro d'adhérent mal formé",
                "member_number",
                member,
            )
        try:
            birth = date.fromisoformat(v.get("birth_date", ""))
        except ValueError:
            return _error(
                line_no,
                EnrolmentCode.LINE_DATE,
                "date de naissance AAAA-MM-JJ attendue",
                "birth_date",
                v.get("birth_date", ""),
            )
    else:
        member = ""
        try:
            nir = parse_nir_value(v["nir"])
        except DomainError as exc:
            return _error(line_no, f"line.{exc.code}", "NIR invalide", "nir", v["nir"])
    try:
        rank = parse_birth_rank(v["birth_rank"])
    except DomainError as exc:
        return _error(
            line_no,
            f"line.{exc.code}",
            "rang de naissance invalide",
            "birth_rank",
            v["birth_rank"],
        )
    key = v["key"].lower()
    if not key or len(key) > MAX_KEY_CHARS or not set(key) <= _KEY_CHARS:
        return _error(
            line_no, EnrolmentCode.LINE_COUNTER, "clé de compteur mal formée", "key", v["key"]
        )
    try:
        day = date.fromisoformat(v["date"])
    except ValueError:
        return _error(
            line_no, EnrolmentCode.LINE_DATE, "date AAAA-MM-JJ attendue", "date", v["date"]
        )
    if day > today:
        return _error(line_no, EnrolmentCode.LINE_DATE, "date dans le futur", "date", v["date"])
    amount = _whole(v["amount_cents"], MAX_AMOUNT_CENTS)
    if amount is None:
        return _error(
            line_no,
            EnrolmentCode.LINE_AMOUNT,
            f"montant en centimes entier entre 0 et {MAX_AMOUNT_CENTS} attendu",
            "amount_cents",
            v["amount_cents"],
        )
    units = _whole(v["units"], MAX_UNITS)
    if units is None:
        return _error(
            line_no,
            EnrolmentCode.LINE_UNITS,
            f"nombre entier entre 0 et {MAX_UNITS} attendu",
            "units",
            v["units"],
        )
    if kind is RecordKind.EQUIPMENT and (amount, units) not in ((0, 0), (0, 1)):
        return _error(
            line_no,
            EnrolmentCode.LINE_AMOUNT,
            "une ligne equipment ne porte ni montant ni unités (0 ou vide)",
            "amount_cents",
            v["amount_cents"],
        )
    if kind is RecordKind.AGREEMENT:
        return _agreement(
            line_no,
            v,
            today,
            TakeoverLine(
                line_no,
                kind,
                nir,
                rank,
                key,
                day,
                amount,
                units,
                member_number=member or None,
                birth_date=birth,
            ),
        )
    if kind is RecordKind.COUNTER and amount == 0 and units == 0:
        return _error(
            line_no,
            EnrolmentCode.LINE_AMOUNT,
            "une ligne counter consomme un montant ou des unités",
            "amount_cents",
            v["amount_cents"],
        )
    return TakeoverLine(
        line_no,
        kind,
        nir,
        rank,
        key,
        day,
        amount,
        units,
        member_number=member or None,
        birth_date=birth,
    )


def _whole(text: str, top: int) -> int | None:
    if text == "":
        return 0
    if not text.isascii() or not text.isdigit() or len(text) > 12:
        return None
    value = int(text)
    return value if value <= top else None


def _agreement(
    line_no: int, v: dict[str, str], today: date, line: TakeoverLine
) -> TakeoverLine | TakeoverLineError:
    """An agreement line: its number, professional and validity, a guaranteed amount."""
    number = v.get("agreement", "")
    if not _AGREEMENT_NUMBER.fullmatch(number):
        return _error(
            line_no,
            EnrolmentCode.LINE_AGREEMENT,
            "numéro d'accord attendu : 1 à 24 lettres, chiffres, . / _ -",
            "agreement",
            number,
        )
    given = v.get("provider", "")
    try:
        provider = parse_am_number(given)
    except DomainError:
        return _error(
            line_no,
            EnrolmentCode.LINE_PROVIDER,
            "numéro AM du professionnel mal formé",
            "provider",
            given,
        )
    text = v.get("valid_until", "")
    try:
        until = date.fromisoformat(text)
    except ValueError:
        return _error(
            line_no, EnrolmentCode.LINE_DATE, "date AAAA-MM-JJ attendue", "valid_until", text
        )
    if until < today or until < line.day:
        return _error(
            line_no,
            EnrolmentCode.LINE_DATE,
            "accord échu : seuls les accords ouverts se reprennent",
            "valid_until",
            text,
        )
    if line.amount_cents == 0:
        return _error(
            line_no,
            EnrolmentCode.LINE_AMOUNT,
            "un accord garantit un montant",
            "amount_cents",
            v["amount_cents"],
        )
    return replace(
        line, units=max(line.units, 1), agreement=number, provider=provider, valid_until=until
    )
