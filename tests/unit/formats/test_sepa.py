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

from tierspayant.domain.amount_limits import EPC_MAX_TRANSFER_CENTS
from tierspayant.domain.errors import DomainError
from tierspayant.domain.payments import BankParty, Mandate, Transfer
from tierspayant.formats.sepa import (
    amount,
    sepa_text,
    write_credit_transfers,
    write_direct_debit,
)
from tierspayant.formats.sepa_rules import LATIN, check_file

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
    assert (
        sepa_text("Pharmacie de l'Église & fils <test>", 70) == "Pharmacie de l'Eglise + fils test"
    )
    assert sepa_text("<<>>", 70) == "NA"
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


# --- EPC implementation-guideline rules (issue 14) ---------------------------------------


def write_transfers(transfers: list[Transfer], debtor: BankParty = OPERATOR) -> str:
    out = io.StringIO()
    write_credit_transfers(
        out, message_id="TP-PAY-2026-11-30", created=DAY, debtor=debtor, execution_date=DAY,
        count=len(transfers), control_cents=sum(t.cents for t in transfers), transfers=transfers,
    )  # fmt: skip
    return out.getvalue()


def refused_code(transfers: list[Transfer], debtor: BankParty = OPERATOR) -> str:
    with pytest.raises(DomainError) as refused:
        write_transfers(transfers, debtor)
    return refused.value.code


def test_the_issues_transfer_above_the_epc_maximum_is_refused_by_the_writer() -> None:
    # Given the transfer of issue 14: 1,386,000,956.79 EUR, which the ISO XSD accepts
    issue = transfer(1, 138_600_095_679)
    # Then the writer refuses it (the payment run splits it first), and accepts the maximum
    assert refused_code([issue]) == "sepa.amount"
    assert refused_code([transfer(1, 0)]) == "sepa.amount"
    assert "999999999.99" in write_transfers([transfer(1, EPC_MAX_TRANSFER_CENTS)])


@pytest.mark.parametrize(
    ("e2e", "why"),
    [
        ("TP 20261130", "a space"),
        ("TP20261130-" + "1" * 25, "36 characters"),
        ("/TP20261130-1", "a leading slash"),
        ("TP20261130-1/", "a trailing slash"),
        ("TP//20261130", "a double slash"),
        ("TP20261130_1", "an underscore"),
        ("TP20261130-é", "an accent"),
        ("", "nothing"),
    ],
)
def test_end_to_end_ids_outside_the_epc_rules_are_refused(e2e: str, why: str) -> None:
    bad = Transfer(e2e, 100, "Pharmacie", OPERATOR.iban, None, "avis")
    assert refused_code([bad]) == "sepa.id", why


def test_a_repeated_end_to_end_id_or_a_bad_account_is_refused() -> None:
    assert refused_code([transfer(1, 100), transfer(1, 200)]) == "sepa.id"
    bad_iban = Transfer("TP-1", 100, "Pharmacie", "FR7630006000011234567890188", None, "avis")
    assert refused_code([bad_iban]) == "sepa.account"
    bad_bic = transfer(1, 100, "CCBP12PPXXX")
    assert refused_code([bad_bic]) == "sepa.account"


def test_a_fund_call_with_a_bad_creditor_id_or_a_later_mandate_is_refused() -> None:
    def code(creditor: BankParty, mandate: Mandate) -> str:
        with pytest.raises(DomainError) as refused:
            write_direct_debit(
                io.StringIO(), message_id="TP-BILL-2026-11-1", created=DAY, creditor=creditor,
                collection_date=date(2026, 12, 10), mandate=mandate,
                debit=transfer(1, 1234567, None),
            )  # fmt: skip
        return refused.value.code

    wrong_key = BankParty(OPERATOR.name, OPERATOR.iban, OPERATOR.bic, "FR82ZZZ534A21")
    assert code(wrong_key, Mandate("RUM-0001", date(2026, 1, 2))) == "sepa.account"
    assert code(OPERATOR, Mandate("RUM-0001", date(2026, 12, 11))) == "sepa.date"
    assert code(OPERATOR, Mandate("RUM 0001", date(2026, 1, 2))) == "sepa.id"


def test_accents_and_ligatures_are_transliterated_not_dropped() -> None:
    assert sepa_text("Œuvre hospitalière Straße Søren Łódź", 70) == (
        "OEuvre hospitaliere Strasse Soren Lodz"
    )
    assert sepa_text("Optique « Vue & Cie » 30 €", 70) == "Optique Vue + Cie 30 EUR"


names = st.text(st.characters(codec="utf-8"), max_size=200)


@settings(max_examples=40, deadline=None)
@given(
    payees=st.lists(
        st.tuples(st.integers(1, EPC_MAX_TRANSFER_CENTS), names, names), min_size=1, max_size=8
    )
)
def test_what_the_writer_writes_passes_the_epc_rules_checker(
    payees: list[tuple[int, str, str]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Given any names and remittance texts (any Unicode) and amounts within the maximum
    transfers = [
        Transfer(f"TP20261130-{n}", cents, name, OPERATOR.iban, "CCBPFRPPXXX", info)
        for n, (cents, name, info) in enumerate(payees)
    ]
    # When the writer writes them
    path = tmp_path_factory.mktemp("sepa") / "pain001.xml"
    path.write_text(write_transfers(transfers), encoding="utf-8")
    # Then the file breaks no EPC rule and every text is in the SEPA Latin set
    assert check_file(path) == []
    texts = re.findall(r"<(?:Nm|Ustrd)>([^<]*)<", path.read_text(encoding="utf-8"))
    assert all(set(t) <= LATIN and 0 < len(t) <= 140 for t in texts)


BAD_FILE = """<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn>
<GrpHdr><MsgId>TP-PAY-2026-11-30</MsgId><CreDtTm>2026-11-30T00:00:00</CreDtTm>
<NbOfTxs>3</NbOfTxs><CtrlSum>1386000958.79</CtrlSum><InitgPty><Nm>Op</Nm></InitgPty></GrpHdr>
<PmtInf><PmtInfId>TP-PAY-2026-11-30</PmtInfId><PmtMtd>TRF</PmtMtd>
<NbOfTxs>2</NbOfTxs><CtrlSum>1386000958.79</CtrlSum><ReqdExctnDt>2026-11-31</ReqdExctnDt>
<Dbtr><Nm>Op</Nm></Dbtr><DbtrAcct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></DbtrAcct>
<CdtTrfTxInf><PmtId><EndToEndId>TP20261130-1</EndToEndId></PmtId>
<Amt><InstdAmt Ccy="EUR">1386000956.79</InstdAmt></Amt>
<Cdtr><Nm>Pharmacie Éloïse</Nm></Cdtr>
<CdtrAcct><Id><IBAN>FR7630006000011234567890188</IBAN></Id></CdtrAcct>
<RmtInf><Ustrd>avis</Ustrd></RmtInf></CdtTrfTxInf>
<CdtTrfTxInf><PmtId><EndToEndId>TP20261130-1</EndToEndId></PmtId>
<Amt><InstdAmt Ccy="USD">2.00</InstdAmt></Amt><CdtrAgt><FinInstnId><BIC>NOTABIC</BIC>
</FinInstnId></CdtrAgt><Cdtr><Nm>Labo</Nm></Cdtr>
<CdtrAcct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></CdtrAcct>
<RmtInf><Ustrd>{long}</Ustrd></RmtInf></CdtTrfTxInf>
</PmtInf></CstmrCdtTrfInitn></Document>
"""


def test_the_checker_lists_every_rule_a_file_breaks(tmp_path: Path) -> None:
    # Given a file the ISO XSD would mostly accept, breaking one EPC rule after another
    path = tmp_path / "bad.xml"
    path.write_text(BAD_FILE.replace("{long}", "x" * 141), encoding="utf-8")
    # When it is checked
    found = [(v.code, v.where.rpartition("/")[2]) for v in check_file(path)]
    # Then each broken rule is listed with the element that breaks it
    assert found == [
        ("sepa.date", "ReqdExctnDt"),  # 31 November
        ("sepa.amount", "InstdAmt"),  # above 999,999,999.99
        ("sepa.text", "Nm"),  # accents in the file
        ("sepa.account", "IBAN"),  # check digits
        ("sepa.id", "EndToEndId"),  # used twice
        ("sepa.amount", "InstdAmt"),  # not in euros
        ("sepa.account", "BIC"),
        ("sepa.text", "Ustrd"),  # 141 characters
        ("sepa.totals", "GrpHdr"),  # 2 transactions, 3 announced at the top
    ]


def test_the_checker_refuses_a_doctype_and_malformed_xml(tmp_path: Path) -> None:
    path = tmp_path / "entity.xml"
    path.write_text('<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "b">]><d>&a;</d>')
    assert [v.code for v in check_file(path)] == ["sepa.text"]
    path.write_text("<Document><GrpHdr>")
    assert [v.code for v in check_file(path)] == ["sepa.text"]
