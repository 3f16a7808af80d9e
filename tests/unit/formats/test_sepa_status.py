"""Reading pain.002.001.03 status reports: statuses, reasons, amounts, refusals by code."""

from __future__ import annotations

from datetime import date

import pytest

from tests.pain002_support import Tx, status_report
from tierspayant.formats.sepa_status import (
    PAIN_002,
    StatusReportError,
    parse_status_report,
)


def test_given_a_report_then_rejections_carry_their_reason_and_amount() -> None:
    report = parse_status_report(
        status_report(
            [
                Tx("TP20260710-123456789-2026-06", amount="14.00"),
                Tx("TP20260710-987654321-2026-06", status="ACSC", reason=None),
                Tx("TP20260710-111111111-2026-06", reason="MD01", amount="7.5"),
            ],
            message_id="STS-42",
            created="2026-07-14T08:30:00+02:00",
        )
    )
    assert report.message_id == "STS-42"
    assert report.created == date(2026, 7, 14)
    assert report.original_message_id == "TP-BILL-2026-06-1"
    first, accepted, third = report.transactions
    assert (first.end_to_end_id, first.rejected, first.reason_code, first.cents) == (
        "TP20260710-123456789-2026-06",
        True,
        "AM04",
        1400,
    )
    assert not accepted.rejected
    assert accepted.cents is None
    assert (third.reason_code, third.cents) == ("MD01", 750)


def test_given_a_reason_on_the_payment_block_then_its_transactions_inherit_it() -> None:
    report = parse_status_report(
        status_report([Tx("TP20260710-123456789-2026-06", reason=None)], block_reason="MS03")
    )
    assert report.transactions[0].reason_code == "MS03"


def test_given_a_rejection_without_any_reason_then_refused() -> None:
    with pytest.raises(StatusReportError) as error:
        parse_status_report(status_report([Tx("TP20260710-123456789-2026-06", reason=None)]))
    assert error.value.code == "returns.no_reason"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"not xml at all", "returns.xml"),
        (b"\xff\xfe<\x00D\x00", "returns.encoding"),
        (
            b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]>'
            + f'<Document xmlns="{PAIN_002}"><CstmrPmtStsRpt>&a;</CstmrPmtStsRpt>'.encode()
            + b"</Document>",
            "returns.doctype",
        ),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.008.001.02">'
            b"<CstmrDrctDbtInitn/></Document>",
            "returns.format",
        ),
        (
            f'<Document xmlns="{PAIN_002}"><CstmrPmtStsRpt><GrpHdr><MsgId>X</MsgId>'
            "<CreDtTm>2026-07-14T08:00:00</CreDtTm></GrpHdr>"
            "<OrgnlGrpInfAndSts><OrgnlMsgId>TP-BILL-2026-06-1</OrgnlMsgId>"
            "<OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId><GrpSts>RJCT</GrpSts>"
            "</OrgnlGrpInfAndSts></CstmrPmtStsRpt></Document>".encode(),
            "returns.group_only",
        ),
        (
            status_report([Tx("TP20260710-123456789-2026-06", amount="14,00")]),
            "returns.amount",
        ),
        (status_report([Tx("E2E")], created="14/07/2026"), "returns.format"),
    ],
)
def test_given_a_bad_file_then_refused_with_its_code(data: bytes, code: str) -> None:
    with pytest.raises(StatusReportError) as error:
        parse_status_report(data)
    assert error.value.code == code
