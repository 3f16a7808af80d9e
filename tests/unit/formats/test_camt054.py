"""Reading the bank's returns of our credit transfers: camt.054 notifications (returned
transactions only), pain.002 status reports through the same entry, refusals by code."""

from __future__ import annotations

from datetime import date

import pytest

from tests.camt054_support import CAMT_054, Returned, notification
from tests.pain002_support import Tx, status_report
from tierspayant.formats.camt054 import parse_returns_file
from tierspayant.formats.sepa_status import StatusReportError


def test_given_a_notification_then_only_returned_transactions_are_read() -> None:
    # Given a notification with two returns among three ordinary credits
    data = notification(
        [Returned("TP20261110-17", "10.50", "AC04"), Returned("TP20261110-42", "1234.5", "MS03")],
        message_id="CAMT-9",
        created="2026-11-13T07:15:00+01:00",
        other_entries=3,
    )
    # When it is read
    report = parse_returns_file(data)
    # Then the two returns read as rejections with their reason and amount in cents
    assert (report.message_id, report.created) == ("CAMT-9", date(2026, 11, 13))
    assert [(t.end_to_end_id, t.rejected, t.reason_code, t.cents) for t in report.transactions] == [
        ("TP20261110-17", True, "AC04", 1050),
        ("TP20261110-42", True, "MS03", 123450),
    ]


def test_given_a_later_version_then_it_is_read_the_same() -> None:
    data = notification([Returned("TP20261110-17", "10.50")]).replace(
        CAMT_054.encode(), b"urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
    )
    [returned] = parse_returns_file(data).transactions
    assert (returned.end_to_end_id, returned.cents) == ("TP20261110-17", 1050)


def test_given_a_pain002_then_the_same_entry_reads_it() -> None:
    report = parse_returns_file(status_report([Tx("TP20261110-17", reason="AC01")]))
    assert [(t.end_to_end_id, t.reason_code) for t in report.transactions] == [
        ("TP20261110-17", "AC01")
    ]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (notification([Returned("TP20261110-17", "10.50", None)]), "returns.no_reason"),
        (notification([Returned("NOTPROVIDED", "10.50")]), "returns.format"),
        (notification([Returned("TP20261110-17", "10,50")]), "returns.amount"),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"/>',
            "returns.kind",
        ),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"/>', "returns.format"),
        (
            b'<!DOCTYPE d [<!ENTITY x "y">]><Document xmlns="'
            + CAMT_054.encode()
            + b'">&x;</Document>',
            "returns.doctype",
        ),
        (b"\xff\xfe<Document/>", "returns.encoding"),
    ],
)
def test_given_a_bad_file_then_it_is_refused_with_its_code(data: bytes, code: str) -> None:
    with pytest.raises(StatusReportError) as refused:
        parse_returns_file(data)
    assert refused.value.code == code
