"""Reading a SEPA payment status report (pain.002.001.03) for the fund calls.

The insurer's bank, through the operator's bank, answers a direct debit with a status
report. This reader keeps what the billing service needs: the report's id and date and,
per transaction, the original end-to-end id, its status (``RJCT`` for a rejected or
returned collection), the ISO 20022 reason code (``AM04``, ``MD01``…) and the amount when
the report repeats it. A reason given only for the payment block or the whole group
applies to the transactions under it. The layout is described in
``docs/formats/pain002.md``.

The file comes from outside: a document type declaration (entities) is refused before
parsing, so the standard library parser never expands anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from xml.etree import ElementTree as ET

from tierspayant.domain.codes import PaymentCode
from tierspayant.domain.errors import DomainError

PAIN_002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03"
MAX_BYTES = 20 * 1024 * 1024  # a status report of the monthly fund calls is a few kB
REJECTED = "RJCT"
_NS = {"p": PAIN_002}
_AMOUNT = re.compile(r"\d{1,15}(\.\d{1,2})?")


class StatusReportError(DomainError):
    """The file is not a pain.002.001.03 status report this reader can use."""


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    end_to_end_id: str
    status: str  # ISO 20022 TxSts: RJCT, ACCP, ACSC, PDNG…
    reason_code: str | None  # StsRsnInf/Rsn/Cd (or Prtry), for a rejection
    cents: int | None  # OrgnlTxRef/Amt/InstdAmt when the report repeats it

    @property
    def rejected(self) -> bool:
        return self.status == REJECTED


@dataclass(frozen=True, slots=True)
class StatusReport:
    message_id: str
    created: date
    original_message_id: str
    transactions: tuple[TransactionStatus, ...]


def read_bank_xml(data: bytes) -> ET.Element:
    """The root element of a bank's XML file (size, encoding and DOCTYPE checked first)."""
    if len(data) > MAX_BYTES:
        raise StatusReportError(
            PaymentCode.RETURNS_TOO_LARGE, f"a status report is at most {MAX_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StatusReportError(
            PaymentCode.RETURNS_ENCODING, "a status report is UTF-8 XML"
        ) from None
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise StatusReportError(
            PaymentCode.RETURNS_DOCTYPE, "a status report has no DOCTYPE or entities"
        )
    if text.startswith("<?xml"):
        text = text.split("?>", 1)[-1]  # the declaration may name an encoding: already decoded
    try:
        return ET.fromstring(text)  # noqa: S314 - no DOCTYPE, so no entity to expand
    except ET.ParseError as exc:
        raise StatusReportError(PaymentCode.RETURNS_XML, f"not well-formed XML: {exc}") from None


def parse_status_report(data: bytes) -> StatusReport:
    """Parse a pain.002.001.03 document; raises ``StatusReportError`` with a code."""
    return status_report_of(read_bank_xml(data))


def status_report_of(root: ET.Element) -> StatusReport:
    """The status report of a parsed pain.002.001.03 document."""
    report = root.find("p:CstmrPmtStsRpt", _NS)
    if root.tag != f"{{{PAIN_002}}}Document" or report is None:
        raise StatusReportError(
            PaymentCode.RETURNS_FORMAT,
            f"expected a Document/CstmrPmtStsRpt in namespace {PAIN_002}",
        )
    created = _required(report, "p:GrpHdr/p:CreDtTm")
    try:
        created_on = date.fromisoformat(created[:10])
    except ValueError:
        raise StatusReportError(
            PaymentCode.RETURNS_FORMAT, f"bad GrpHdr/CreDtTm {created!r}"
        ) from None
    group = report.find("p:OrgnlGrpInfAndSts", _NS)
    if group is None:
        raise StatusReportError(PaymentCode.RETURNS_FORMAT, "missing OrgnlGrpInfAndSts")
    group_reason = _reason(group)
    transactions: list[TransactionStatus] = []
    for block in report.findall("p:OrgnlPmtInfAndSts", _NS):
        block_reason = _reason(block) or group_reason
        for tx in block.findall("p:TxInfAndSts", _NS):
            transactions.append(_transaction(tx, block_reason))
    if not transactions and _text(group, "p:GrpSts") == REJECTED:
        raise StatusReportError(
            PaymentCode.RETURNS_GROUP_ONLY,
            "the whole message is rejected without transaction statuses: record the "
            "return from the bank's notice of each collection",
        )
    return StatusReport(
        message_id=_required(report, "p:GrpHdr/p:MsgId"),
        created=created_on,
        original_message_id=_required(group, "p:OrgnlMsgId"),
        transactions=tuple(transactions),
    )


def _transaction(tx: ET.Element, inherited_reason: str | None) -> TransactionStatus:
    end_to_end = _required(tx, "p:OrgnlEndToEndId")
    status = _text(tx, "p:TxSts")
    if status is None:
        raise StatusReportError(PaymentCode.RETURNS_FORMAT, f"no TxSts for {end_to_end}")
    reason = _reason(tx) or inherited_reason
    if status == REJECTED and reason is None:
        raise StatusReportError(
            PaymentCode.RETURNS_NO_REASON, f"the rejection of {end_to_end} has no reason"
        )
    raw_amount = _text(tx, "p:OrgnlTxRef/p:Amt/p:InstdAmt")
    cents = None
    if raw_amount is not None:
        if not _AMOUNT.fullmatch(raw_amount):
            raise StatusReportError(PaymentCode.RETURNS_AMOUNT, f"bad amount {raw_amount!r}")
        units, _, decimals = raw_amount.partition(".")
        cents = int(units) * 100 + int(decimals.ljust(2, "0") or "0")
    return TransactionStatus(end_to_end, status, reason, cents)


def parse_amount(raw: str) -> int:
    """Cents of an ISO 20022 decimal amount (``123.4`` → 12340); ``returns.amount`` else."""
    if not _AMOUNT.fullmatch(raw):
        raise StatusReportError(PaymentCode.RETURNS_AMOUNT, f"bad amount {raw!r}")
    units, _, decimals = raw.partition(".")
    return int(units) * 100 + int(decimals.ljust(2, "0") or "0")


def _reason(element: ET.Element) -> str | None:
    for info in element.findall("p:StsRsnInf", _NS):
        code = _text(info, "p:Rsn/p:Cd") or _text(info, "p:Rsn/p:Prtry")
        if code:
            return code[:35]
    return None


def _text(element: ET.Element, path: str) -> str | None:
    found = element.find(path, _NS)
    if found is None or found.text is None or not found.text.strip():
        return None
    return found.text.strip()


def _required(element: ET.Element, path: str) -> str:
    value = _text(element, path)
    if value is None:
        raise StatusReportError(PaymentCode.RETURNS_FORMAT, f"missing {path.replace('p:', '')}")
    return value
