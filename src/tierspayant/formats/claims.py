"""Claim batch files (JSON Lines, ``docs/formats/claims.md``): one invoice per line.

Read as a stream: one physical line at a time, so memory does not grow with the file. A
line that is not a valid invoice becomes a :class:`LineError` with its number and a coded
reason; the reader goes on with the next one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from tierspayant.domain.amount_limits import DEFAULT_CEILINGS, AmountCeiling
from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.claims import ClaimContent, ClaimLine, check_content
from tierspayant.domain.codes import EnrolmentCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.pricing import RssClass

_E = TypeVar("_E", bound=StrEnum)
FORMAT = "tierspayant-claims/1"
MAX_LINE_BYTES = 256 * 1024  # an invoice of 99 lines is far below this
_TOP = frozenset(
    {
        "invoice_number",
        "card",
        "care_date",
        "agreement_number",
        "engagement_number",
        "maternity",
        "correction",
        "lines",
    }
)
_CARD = frozenset({"amc_number", "birth_date", "nir", "birth_rank", "member_number"})
_LINE = frozenset(
    {
        "act_code",
        "domain",
        "family",
        "quantity",
        "care_date",
        "br_cents",
        "billed_cents",
        "amo_rate_bp",
        "amo_paid_cents",
        "amc_requested_cents",
        "exemption",
        "in_care_pathway",
        "rss_class",
        "plv_cents",
        "psychiatry",
    }
)


# Values of optional line fields that a writer may leave out.
_DEFAULTS: Mapping[str, Any] = {
    "exemption": Exemption.NONE.value,
    "in_care_pathway": True,
    "rss_class": None,
    "plv_cents": None,
    "psychiatry": False,
}


class ClaimFileError(DomainError):
    """One line of a claim file is not a valid invoice."""


@dataclass(frozen=True, slots=True)
class FileCard:
    amc_number: str
    birth_date: date
    nir: str | None
    birth_rank: int | None
    member_number: str | None


@dataclass(frozen=True, slots=True)
class ClaimRecord:
    line_no: int
    card: FileCard
    content: ClaimContent
    correction: bool


@dataclass(frozen=True, slots=True)
class LineError:
    line_no: int
    code: str
    message: str


def read_claims(
    path: Path, ceilings: Mapping[CareDomain, AmountCeiling] = DEFAULT_CEILINGS
) -> Iterator[ClaimRecord | LineError]:
    """Each non-blank line of ``path`` as an invoice or as the error that refuses it.

    Every error names the field and the rule; amounts are held to ``ceilings``.
    """
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            if len(raw) > MAX_LINE_BYTES:
                yield LineError(
                    line_no, EnrolmentCode.FILE_LINE_TOO_LONG, "line longer than 256 KiB"
                )
                continue
            try:
                yield parse_claim(line_no, raw, ceilings)
            except DomainError as exc:
                named = exc.field is None or exc.message.startswith(exc.field)
                where = "" if named else f" ({exc.field})"
                yield LineError(line_no, exc.code, exc.message + where)


def parse_claim(
    line_no: int,
    raw: bytes | str,
    ceilings: Mapping[CareDomain, AmountCeiling] = DEFAULT_CEILINGS,
) -> ClaimRecord:
    """One JSON object as an invoice, or :class:`ClaimFileError` (or a domain error)."""
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ClaimFileError(
                EnrolmentCode.LINE_ENCODING,
                f"the line is not UTF-8 text (invalid byte at offset {exc.start})",
            ) from None
    try:
        document = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ClaimFileError(
            EnrolmentCode.FILE_JSON, f"the line is not valid JSON: {exc.msg} at column {exc.colno}"
        ) from None
    except RecursionError:
        raise ClaimFileError(EnrolmentCode.FILE_JSON, "the line nests JSON too deeply") from None
    obj = _object(document, "", _TOP)
    card = _object(obj.get("card"), "card", _CARD)
    lines = obj.get("lines")
    if not isinstance(lines, list) or not lines:
        raise ClaimFileError(
            EnrolmentCode.FILE_LINES, "lines must be a non-empty list", field="lines"
        )
    content = ClaimContent(
        invoice_number=_text(obj, "invoice_number", "", required=True) or "",
        care_date=_date(obj, "care_date", ""),
        agreement_number=_text(obj, "agreement_number", ""),
        engagement_number=_text(obj, "engagement_number", "", longest=160),
        maternity=_flag(obj, "maternity", "", default=False),
        lines=tuple(
            _line(_object(item, f"lines[{i}]", _LINE), f"lines[{i}]")
            for i, item in enumerate(lines)
        ),
    )
    check_content(content, ceilings)
    rank = card.get("birth_rank")
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool)):
        raise ClaimFileError(
            EnrolmentCode.FILE_TYPE, "birth_rank must be an integer", field="card.birth_rank"
        )
    return ClaimRecord(
        line_no=line_no,
        card=FileCard(
            amc_number=_text(card, "amc_number", "card.", required=True) or "",
            birth_date=_date(card, "birth_date", "card."),
            nir=_text(card, "nir", "card."),
            birth_rank=rank,
            member_number=_text(card, "member_number", "card."),
        ),
        content=content,
        correction=_flag(obj, "correction", "", default=False),
    )


def _object(value: Any, where: str, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ClaimFileError(
            EnrolmentCode.FILE_TYPE,
            f"{where or 'the line'} must be a JSON object",
            field=where or None,
        )
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ClaimFileError(
            EnrolmentCode.FILE_UNKNOWN_FIELD,
            f"unknown field {unknown[0]!r}",
            field=f"{where}.{unknown[0]}",
        )
    return value


def _text(
    obj: Mapping[str, Any], key: str, where: str, *, required: bool = False, longest: int = 40
) -> str | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ClaimFileError(
                EnrolmentCode.FILE_MISSING, f"{where}{key} is required", field=where + key
            )
        return None
    if not isinstance(value, str) or len(value) > longest:
        raise ClaimFileError(
            EnrolmentCode.FILE_TYPE,
            f"{where}{key} must be a string of at most {longest} characters",
            field=where + key,
        )
    return value.strip()


def _date(obj: Mapping[str, Any], key: str, where: str) -> date:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ClaimFileError(
            EnrolmentCode.FILE_MISSING,
            f"{where}{key} is required, a date written YYYY-MM-DD",
            field=where + key,
        )
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ClaimFileError(
            EnrolmentCode.FILE_DATE,
            f"{where}{key} is not a date written YYYY-MM-DD",
            field=where + key,
        ) from None


def _int(obj: Mapping[str, Any], key: str, where: str, default: int | None = None) -> int:
    """A whole number; its sign and size are the domain's rules (``check_content``), which
    name the rule broken (``claim.negative``, ``claim.line_ceiling``, ``claim.quantity``…)."""
    value = obj.get(key, default)
    if value is None:
        raise ClaimFileError(
            EnrolmentCode.FILE_MISSING, f"{where}.{key} is required", field=f"{where}.{key}"
        )
    if not isinstance(value, int) or isinstance(value, bool):
        raise ClaimFileError(
            EnrolmentCode.FILE_TYPE,
            f"{where}.{key} must be a whole number (amounts in cents, no decimals or quotes)",
            field=f"{where}.{key}",
        )
    return value


def _flag(obj: Mapping[str, Any], key: str, where: str, *, default: bool) -> bool:
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise ClaimFileError(
            EnrolmentCode.FILE_TYPE, f"{where}{key} must be true or false", field=where + key
        )
    return value


def _code(kind: type[_E], value: Any, field: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise ClaimFileError(
            EnrolmentCode.FILE_CODE, f"{field} must be one of {allowed}", field=field
        ) from None


def _line(obj: Mapping[str, Any], where: str) -> ClaimLine:
    domain = _code(CareDomain, obj.get("domain"), f"{where}.domain")
    exemption = _code(Exemption, obj.get("exemption", Exemption.NONE.value), f"{where}.exemption")
    rss_raw = obj.get("rss_class")
    rss = None if rss_raw is None else _code(RssClass, rss_raw, f"{where}.rss_class")
    plv = obj.get("plv_cents")
    return ClaimLine(
        act_code=_text(obj, "act_code", where + ".", required=True) or "",
        domain=domain,
        family=_text(obj, "family", where + ".", required=True) or "",
        quantity=_int(obj, "quantity", where, 1),
        care_date=_date(obj, "care_date", where + "."),
        br_cents=_int(obj, "br_cents", where),
        billed_cents=_int(obj, "billed_cents", where),
        amo_rate_bp=_int(obj, "amo_rate_bp", where),
        amo_paid_cents=_int(obj, "amo_paid_cents", where),
        amc_requested_cents=_int(obj, "amc_requested_cents", where),
        exemption=exemption,
        in_care_pathway=_flag(obj, "in_care_pathway", where + ".", default=True),
        rss_class=rss,
        plv_cents=None if plv is None else _int(obj, "plv_cents", where),
        psychiatry=_flag(obj, "psychiatry", where + ".", default=False),
    )


def claim_json(record: ClaimRecord) -> str:
    """One line of a claim file for ``record`` (the writer of the same format)."""
    content = record.content
    card = record.card
    document: dict[str, Any] = {
        "invoice_number": content.invoice_number,
        "card": {
            k: v
            for k, v in (
                ("amc_number", card.amc_number),
                ("birth_date", card.birth_date.isoformat()),
                ("nir", card.nir),
                ("birth_rank", card.birth_rank),
                ("member_number", card.member_number),
            )
            if v is not None
        },
        "care_date": content.care_date.isoformat(),
        "lines": [
            {
                "act_code": line.act_code,
                "domain": line.domain.value,
                "family": line.family,
                "quantity": line.quantity,
                "care_date": line.care_date.isoformat(),
                "br_cents": line.br_cents,
                "billed_cents": line.billed_cents,
                "amo_rate_bp": line.amo_rate_bp,
                "amo_paid_cents": line.amo_paid_cents,
                "amc_requested_cents": line.amc_requested_cents,
                **{k: v for k, v in line.detail().items() if _DEFAULTS.get(k) != v},
            }
            for line in content.lines
        ],
    }
    if content.agreement_number:
        document["agreement_number"] = content.agreement_number
    if content.engagement_number:
        document["engagement_number"] = content.engagement_number
    if content.maternity:
        document["maternity"] = True
    if record.correction:
        document["correction"] = True
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))
