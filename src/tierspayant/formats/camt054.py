"""Reading the bank's returns of our credit transfers: camt.054 notifications, and the
dispatch between them and pain.002 status reports.

When a provider's bank cannot credit a transfer (account closed ``AC04``, unknown
``AC01``, blocked ``AG01``…), the transfer comes back to the operator's account. Before
settlement the operator's bank says so in a pain.002 status report (``RJCT``, the same
layout as for the fund calls, read by :mod:`tierspayant.formats.sepa_status`); after
settlement it is a return, booked as a credit on the operator's account and notified in
a camt.054 (BankToCustomerDebitCreditNotification). This reader keeps, per returned
transaction (a ``TxDtls`` with ``RtrInf``): the original end-to-end id, the return
reason and the amount. Entries without return information (ordinary credits and debits)
are skipped. Versions 001.02 to 001.08 share the elements read here; the layout is in
``docs/formats/camt054.md``.
"""

from __future__ import annotations

import re
from datetime import date
from xml.etree import ElementTree as ET

from tierspayant.domain.codes import PaymentCode
from tierspayant.formats.sepa_status import (
    PAIN_002,
    REJECTED,
    StatusReport,
    StatusReportError,
    TransactionStatus,
    parse_amount,
    read_bank_xml,
    status_report_of,
)

_CAMT_054 = re.compile(r"urn:iso:std:iso:20022:tech:xsd:camt\.054\.001\.0[2-8]")


def parse_returns_file(data: bytes) -> StatusReport:
    """A pain.002 status report or a camt.054 notification, as the transactions returned.

    Returned camt.054 transactions read as ``RJCT`` statuses; anything else is refused
    with ``returns.kind``.
    """
    root = read_bank_xml(data)
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if namespace == PAIN_002:
        return status_report_of(root)
    if _CAMT_054.fullmatch(namespace) and root.tag.endswith("}Document"):
        return _notification(root, {"c": namespace})
    raise StatusReportError(
        PaymentCode.RETURNS_KIND,
        "expected a pain.002.001.03 status report or a camt.054 notification",
    )


def _notification(root: ET.Element, ns: dict[str, str]) -> StatusReport:
    body = root.find("c:BkToCstmrDbtCdtNtfctn", ns)
    if body is None:
        raise StatusReportError(PaymentCode.RETURNS_FORMAT, "missing BkToCstmrDbtCdtNtfctn")
    message_id = _required(body, "c:GrpHdr/c:MsgId", ns)
    created = _required(body, "c:GrpHdr/c:CreDtTm", ns)
    try:
        created_on = date.fromisoformat(created[:10])
    except ValueError:
        raise StatusReportError(
            PaymentCode.RETURNS_FORMAT, f"bad GrpHdr/CreDtTm {created!r}"
        ) from None
    transactions: list[TransactionStatus] = []
    notification_ids: list[str] = []
    for notification in body.findall("c:Ntfctn", ns):
        notification_ids.append(_text(notification, "c:Id", ns) or "")
        for entry in notification.findall("c:Ntry", ns):
            details = entry.findall("c:NtryDtls/c:TxDtls", ns)
            for tx in details:
                if tx.find("c:RtrInf", ns) is None:
                    continue
                transactions.append(_returned(tx, entry, len(details), ns))
    return StatusReport(
        message_id=message_id,
        created=created_on,
        original_message_id=notification_ids[0] if notification_ids else "",
        transactions=tuple(transactions),
    )


def _returned(
    tx: ET.Element, entry: ET.Element, siblings: int, ns: dict[str, str]
) -> TransactionStatus:
    end_to_end = _text(tx, "c:Refs/c:EndToEndId", ns)
    if end_to_end is None or end_to_end == "NOTPROVIDED":
        raise StatusReportError(
            PaymentCode.RETURNS_FORMAT, "a returned transaction has no Refs/EndToEndId"
        )
    reason = _text(tx, "c:RtrInf/c:Rsn/c:Cd", ns) or _text(tx, "c:RtrInf/c:Rsn/c:Prtry", ns)
    if reason is None:
        raise StatusReportError(
            PaymentCode.RETURNS_NO_REASON, f"the return of {end_to_end} has no reason"
        )
    # The transaction's own amount (001.02: AmtDtls/TxAmt/Amt; later versions also Amt);
    # the entry's amount only when the entry holds this transaction alone.
    raw = (
        _text(tx, "c:AmtDtls/c:TxAmt/c:Amt", ns)
        or _text(tx, "c:Amt", ns)
        or (_text(entry, "c:Amt", ns) if siblings == 1 else None)
    )
    cents = None if raw is None else parse_amount(raw)
    return TransactionStatus(end_to_end[:35], REJECTED, reason[:35], cents)


def _text(element: ET.Element, path: str, ns: dict[str, str]) -> str | None:
    found = element.find(path, ns)
    if found is None or found.text is None or not found.text.strip():
        return None
    return found.text.strip()


def _required(element: ET.Element, path: str, ns: dict[str, str]) -> str:
    value = _text(element, path, ns)
    if value is None:
        raise StatusReportError(PaymentCode.RETURNS_FORMAT, f"missing {path.replace('c:', '')}")
    return value
