"""SEPA files validated against the XSDs shipped with sepaxml."""

from __future__ import annotations

import io
import re
from datetime import date
from functools import cache
from pathlib import Path

import pytest
import sepaxml
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st

from tierspayant.domain.errors import DomainError
from tierspayant.domain.payments import BankParty, Mandate, Transfer
from tierspayant.formats.sepa import (
    amount,
    sepa_text,
    write_credit_transfers,
    write_direct_debit,
)

SCHEMAS = Path(sepaxml.__file__).parent / "schemas"
OPERATOR = BankParty(
    "Opérateur Tiers Payant & Cie", "FR7630006000011234567890189", "AGRIFRPPXXX", "FR81ZZZ534A21"
)
DAY = date(2026, 11, 30)


@cache
def schema(name: str) -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(SCHEMAS / f"{name}.xsd"))


def transfer(n: int, cents: int, bic: str | None = "CCBPFRPPXXX") -> Transfer:
    return Transfer(
        f"TP20261130-{n}",
        cents,
        f"Pharmacie <Éloïse> n°{n}",
        "FR7630006000011234567890189",
        bic,
        f"avis R20261130-{n}",
    )


def test_amounts_are_written_from_cents() -> None:
    assert [amount(c) for c in (0, 5, 100, 123456)] == ["0.00", "0.05", "1.00", "1234.56"]
    with pytest.raises(DomainError):
        amount(-1)


def test_text_is_reduced_to_the_sepa_character_set() -> None:
    assert sepa_text("Pharmacie de l'Église & fils <test>", 70) == "Pharmacie de l'Eglise fils test"
    assert sepa_text("€€€", 70) == "NA"
    assert len(sepa_text("x" * 200, 70)) == 70


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**10), st.booleans()), min_size=1, max_size=20))
def test_credit_transfers_validate_against_pain_001(payees: list[tuple[int, bool]]) -> None:
    transfers = [
        transfer(n, cents, "CCBPFRPPXXX" if with_bic else None)
        for n, (cents, with_bic) in enumerate(payees)
    ]
    out = io.StringIO()
    write_credit_transfers(
        out, message_id="TP-PAY-2026-11-30", created=DAY, debtor=OPERATOR, execution_date=DAY,
        count=len(transfers), control_cents=sum(t.cents for t in transfers), transfers=transfers,
    )  # fmt: skip
    document = out.getvalue()
    assert list(schema("pain.001.001.03").iter_errors(document)) == []
    # and every transfer is there with its amount, in euros with two decimals
    amounts = re.findall(r'<InstdAmt Ccy="EUR">([0-9.]+)</InstdAmt>', document)
    assert amounts == [f"{cents // 100}.{cents % 100:02d}" for cents, _ in payees]


def test_announced_totals_must_match_what_is_written() -> None:
    with pytest.raises(DomainError) as refused:
        write_credit_transfers(
            io.StringIO(), message_id="M", created=DAY, debtor=OPERATOR, execution_date=DAY,
            count=1, control_cents=100, transfers=[transfer(1, 99)],
        )  # fmt: skip
    assert refused.value.code == "sepa.totals"


def test_a_fund_call_validates_against_pain_008() -> None:
    out = io.StringIO()
    write_direct_debit(
        out, message_id="TP-BILL-2026-11-1", created=DAY, creditor=OPERATOR,
        collection_date=date(2026, 12, 10), mandate=Mandate("RUM-0001", date(2026, 1, 2)),
        debit=transfer(1, 1234567, None),
    )  # fmt: skip
    schema("pain.008.001.02").validate(out.getvalue())
    assert '<InstdAmt Ccy="EUR">12345.67</InstdAmt>' in out.getvalue()
