"""SEPA files: credit transfers (pain.001.001.03) and direct debits (pain.008.001.02).

Written element by element to a text handle, so a run with hundreds of thousands of
payees never builds the document in memory. The group header carries the number of
transactions and their sum before the transactions themselves: the caller computes them
first (one SQL aggregate) and the writer checks, at the end, that what it wrote matches.
Everything in the file comes from the arguments (no clock): the same run writes the same
bytes.

Every value goes through the EPC implementation-guideline rules of
:mod:`tierspayant.formats.sepa_rules` before it is written: text is transliterated to the
SEPA Latin set and cut to its length, and an amount, reference, account or date that
breaks a rule stops the writer with a coded error (``sepa.amount``, ``sepa.id``…), so the
file is never renamed to its final name. Why these files are written here rather than
through the ``sepaxml`` library: docs/decisions/0001-sepa-files-and-base45.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import TextIO
from xml.sax.saxutils import escape

from tierspayant.domain.codes import PaymentCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.payments import BankParty, Mandate, Transfer
from tierspayant.formats.sepa_rules import (
    NAME_MAX,
    REMITTANCE_MAX,
    SepaRuleError,
    check_amount,
    check_bic,
    check_creditor_id,
    check_iban,
    check_reference,
    check_signature,
    transliterate,
)

PAIN_001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
PAIN_008 = "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def sepa_text(value: str, limit: int) -> str:
    """Reduce text to the SEPA Latin character set (accents dropped), at most ``limit``."""
    return transliterate(value, limit)


def amount(cents: int) -> str:
    """Cents as the decimal amount a pain file carries (``12.30``)."""
    if cents < 0:
        raise DomainError(PaymentCode.SEPA_NEGATIVE, "a SEPA amount cannot be negative")
    return f"{cents // 100}.{cents % 100:02d}"


def _el(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"


def _agent(bic: str | None, field: str) -> str:
    if bic:
        return f"<FinInstnId>{_el('BIC', check_bic(bic, field))}</FinInstnId>"
    return "<FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId>"


def _unique(end_to_end_id: str, seen: set[str]) -> None:
    check_reference(end_to_end_id, "EndToEndId")
    if end_to_end_id in seen:
        raise SepaRuleError(
            PaymentCode.SEPA_ID,
            f"EndToEndId: {end_to_end_id} is used twice in one file",
            field="EndToEndId",
        )
    seen.add(end_to_end_id)


def _check(count: int, cents: int, expected_count: int, expected_cents: int) -> None:
    if (count, cents) != (expected_count, expected_cents):
        raise DomainError(
            PaymentCode.SEPA_TOTALS,
            f"the file announced {expected_count} transactions for {expected_cents} cents "
            f"but holds {count} for {cents}",
        )


def write_credit_transfers(
    out: TextIO,
    *,
    message_id: str,
    created: date,
    debtor: BankParty,
    execution_date: date,
    count: int,
    control_cents: int,
    transfers: Iterable[Transfer],
) -> None:
    """Write one pain.001 message: one payment block debiting the operator's account.

    Each transfer is within the EPC maximum (the caller splits larger payments with
    :func:`tierspayant.domain.payments.split_transfer`) and has its own end-to-end id.
    """
    check_reference(message_id, "MsgId")
    check_iban(debtor.iban, "DbtrAcct.IBAN")
    header = (
        f"{_el('MsgId', message_id)}{_el('CreDtTm', f'{created.isoformat()}T00:00:00')}"
        f"{_el('NbOfTxs', str(count))}{_el('CtrlSum', amount(control_cents))}"
        f"<InitgPty>{_el('Nm', sepa_text(debtor.name, NAME_MAX))}</InitgPty>"
    )
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f'<Document xmlns="{PAIN_001}" xmlns:xsi="{_XSI}"><CstmrCdtTrfInitn>\n')
    out.write(f"<GrpHdr>{header}</GrpHdr>\n")
    out.write(
        f"<PmtInf>{_el('PmtInfId', message_id)}<PmtMtd>TRF</PmtMtd><BtchBookg>true</BtchBookg>"
        f"{_el('NbOfTxs', str(count))}{_el('CtrlSum', amount(control_cents))}"
        "<PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl></PmtTpInf>"
        f"{_el('ReqdExctnDt', execution_date.isoformat())}"
        f"<Dbtr>{_el('Nm', sepa_text(debtor.name, NAME_MAX))}</Dbtr>"
        f"<DbtrAcct><Id>{_el('IBAN', debtor.iban)}</Id></DbtrAcct>"
        f"<DbtrAgt>{_agent(debtor.bic, 'DbtrAgt.BIC')}</DbtrAgt><ChrgBr>SLEV</ChrgBr>\n"
    )
    written = total = 0
    seen: set[str] = set()
    for t in transfers:
        _unique(t.end_to_end_id, seen)
        agent = f"<CdtrAgt>{_agent(t.bic, 'CdtrAgt.BIC')}</CdtrAgt>" if t.bic else ""
        out.write(
            f"<CdtTrfTxInf><PmtId>{_el('EndToEndId', t.end_to_end_id)}</PmtId>"
            f'<Amt><InstdAmt Ccy="EUR">{amount(check_amount(t.cents, "InstdAmt"))}</InstdAmt>'
            f"</Amt>{agent}<Cdtr>{_el('Nm', sepa_text(t.name, NAME_MAX))}</Cdtr>"
            f"<CdtrAcct><Id>{_el('IBAN', check_iban(t.iban, 'CdtrAcct.IBAN'))}</Id></CdtrAcct>"
            f"<RmtInf>{_el('Ustrd', sepa_text(t.remittance_info, REMITTANCE_MAX))}</RmtInf>"
            "</CdtTrfTxInf>\n"
        )
        written += 1
        total += t.cents
    out.write("</PmtInf></CstmrCdtTrfInitn></Document>\n")
    _check(written, total, count, control_cents)


def write_direct_debit(
    out: TextIO,
    *,
    message_id: str,
    created: date,
    creditor: BankParty,
    collection_date: date,
    mandate: Mandate,
    debit: Transfer,
) -> None:
    """Write one pain.008 message collecting one fund call (SEPA B2B, recurrent)."""
    cents = amount(check_amount(debit.cents, "InstdAmt"))
    check_reference(message_id, "MsgId")
    check_reference(debit.end_to_end_id, "EndToEndId")
    check_reference(mandate.mandate_id, "MndtId")
    check_signature(mandate.signed_on, collection_date, "DtOfSgntr")
    check_iban(creditor.iban, "CdtrAcct.IBAN")
    check_iban(debit.iban, "DbtrAcct.IBAN")
    check_creditor_id(creditor.creditor_id, "CdtrSchmeId")
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f'<Document xmlns="{PAIN_008}" xmlns:xsi="{_XSI}"><CstmrDrctDbtInitn>\n')
    out.write(
        f"<GrpHdr>{_el('MsgId', message_id)}"
        f"{_el('CreDtTm', f'{created.isoformat()}T00:00:00')}<NbOfTxs>1</NbOfTxs>"
        f"{_el('CtrlSum', cents)}"
        f"<InitgPty>{_el('Nm', sepa_text(creditor.name, NAME_MAX))}</InitgPty>"
        "</GrpHdr>\n"
    )
    out.write(
        f"<PmtInf>{_el('PmtInfId', message_id)}<PmtMtd>DD</PmtMtd><BtchBookg>true</BtchBookg>"
        f"<NbOfTxs>1</NbOfTxs>{_el('CtrlSum', cents)}"
        "<PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl><LclInstrm><Cd>B2B</Cd></LclInstrm>"
        "<SeqTp>RCUR</SeqTp></PmtTpInf>"
        f"{_el('ReqdColltnDt', collection_date.isoformat())}"
        f"<Cdtr>{_el('Nm', sepa_text(creditor.name, NAME_MAX))}</Cdtr>"
        f"<CdtrAcct><Id>{_el('IBAN', creditor.iban)}</Id></CdtrAcct>"
        f"<CdtrAgt>{_agent(creditor.bic, 'CdtrAgt.BIC')}</CdtrAgt><ChrgBr>SLEV</ChrgBr>"
        f"<CdtrSchmeId><Id><PrvtId><Othr>{_el('Id', creditor.creditor_id)}"
        "<SchmeNm><Prtry>SEPA</Prtry></SchmeNm></Othr></PrvtId></Id></CdtrSchmeId>\n"
    )
    out.write(
        f"<DrctDbtTxInf><PmtId>{_el('EndToEndId', debit.end_to_end_id)}</PmtId>"
        f'<InstdAmt Ccy="EUR">{cents}</InstdAmt>'
        f"<DrctDbtTx><MndtRltdInf>{_el('MndtId', mandate.mandate_id)}"
        f"{_el('DtOfSgntr', mandate.signed_on.isoformat())}</MndtRltdInf></DrctDbtTx>"
        f"<DbtrAgt>{_agent(debit.bic, 'DbtrAgt.BIC')}</DbtrAgt>"
        f"<Dbtr>{_el('Nm', sepa_text(debit.name, NAME_MAX))}</Dbtr>"
        f"<DbtrAcct><Id>{_el('IBAN', debit.iban)}</Id></DbtrAcct>"
        f"<RmtInf>{_el('Ustrd', sepa_text(debit.remittance_info, REMITTANCE_MAX))}</RmtInf>"
        "</DrctDbtTxInf>\n</PmtInf></CstmrDrctDbtInitn></Document>\n"
    )
