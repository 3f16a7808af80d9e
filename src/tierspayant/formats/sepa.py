"""SEPA files: credit transfers (pain.001.001.03) and direct debits (pain.008.001.02).

Written element by element to a text handle, so a run with hundreds of thousands of
payees never builds the document in memory. The group header carries the number of
transactions and their sum before the transactions themselves: the caller computes them
first (one SQL aggregate) and the writer checks, at the end, that what it wrote matches.
Everything in the file comes from the arguments (no clock): the same run writes the same
bytes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import date
from typing import TextIO
from xml.sax.saxutils import escape

from tierspayant.domain.codes import PaymentCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.payments import BankParty, Mandate, Transfer

PAIN_001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
PAIN_008 = "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"
_ALLOWED = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")


def sepa_text(value: str, limit: int) -> str:
    """Reduce text to the SEPA Latin character set (accents dropped), at most ``limit``."""
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    cleaned = "".join(c if c in _ALLOWED else " " for c in plain)
    return " ".join(cleaned.split())[:limit] or "NA"


def amount(cents: int) -> str:
    """Cents as the decimal amount a pain file carries (``12.30``)."""
    if cents < 0:
        raise DomainError(PaymentCode.SEPA_NEGATIVE, "a SEPA amount cannot be negative")
    return f"{cents // 100}.{cents % 100:02d}"


def _el(name: str, text: str) -> str:
    return f"<{name}>{escape(text)}</{name}>"


def _agent(bic: str | None) -> str:
    if bic:
        return f"<FinInstnId>{_el('BIC', bic)}</FinInstnId>"
    return "<FinInstnId><Othr><Id>NOTPROVIDED</Id></Othr></FinInstnId>"


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
    """Write one pain.001 message: one payment block debiting the operator's account."""
    header = (
        f"{_el('MsgId', message_id)}{_el('CreDtTm', f'{created.isoformat()}T00:00:00')}"
        f"{_el('NbOfTxs', str(count))}{_el('CtrlSum', amount(control_cents))}"
        f"<InitgPty>{_el('Nm', sepa_text(debtor.name, 70))}</InitgPty>"
    )
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f'<Document xmlns="{PAIN_001}" xmlns:xsi="{_XSI}"><CstmrCdtTrfInitn>\n')
    out.write(f"<GrpHdr>{header}</GrpHdr>\n")
    out.write(
        f"<PmtInf>{_el('PmtInfId', message_id)}<PmtMtd>TRF</PmtMtd><BtchBookg>true</BtchBookg>"
        f"{_el('NbOfTxs', str(count))}{_el('CtrlSum', amount(control_cents))}"
        "<PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl></PmtTpInf>"
        f"{_el('ReqdExctnDt', execution_date.isoformat())}"
        f"<Dbtr>{_el('Nm', sepa_text(debtor.name, 70))}</Dbtr>"
        f"<DbtrAcct><Id>{_el('IBAN', debtor.iban)}</Id></DbtrAcct>"
        f"<DbtrAgt>{_agent(debtor.bic)}</DbtrAgt><ChrgBr>SLEV</ChrgBr>\n"
    )
    written = total = 0
    for t in transfers:
        agent = f"<CdtrAgt>{_agent(t.bic)}</CdtrAgt>" if t.bic else ""
        out.write(
            f"<CdtTrfTxInf><PmtId>{_el('EndToEndId', t.end_to_end_id)}</PmtId>"
            f'<Amt><InstdAmt Ccy="EUR">{amount(t.cents)}</InstdAmt></Amt>{agent}'
            f"<Cdtr>{_el('Nm', sepa_text(t.name, 70))}</Cdtr>"
            f"<CdtrAcct><Id>{_el('IBAN', t.iban)}</Id></CdtrAcct>"
            f"<RmtInf>{_el('Ustrd', sepa_text(t.remittance_info, 140))}</RmtInf></CdtTrfTxInf>\n"
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
    cents = amount(debit.cents)
    out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
    out.write(f'<Document xmlns="{PAIN_008}" xmlns:xsi="{_XSI}"><CstmrDrctDbtInitn>\n')
    out.write(
        f"<GrpHdr>{_el('MsgId', message_id)}"
        f"{_el('CreDtTm', f'{created.isoformat()}T00:00:00')}<NbOfTxs>1</NbOfTxs>"
        f"{_el('CtrlSum', cents)}<InitgPty>{_el('Nm', sepa_text(creditor.name, 70))}</InitgPty>"
        "</GrpHdr>\n"
    )
    out.write(
        f"<PmtInf>{_el('PmtInfId', message_id)}<PmtMtd>DD</PmtMtd><BtchBookg>true</BtchBookg>"
        f"<NbOfTxs>1</NbOfTxs>{_el('CtrlSum', cents)}"
        "<PmtTpInf><SvcLvl><Cd>SEPA</Cd></SvcLvl><LclInstrm><Cd>B2B</Cd></LclInstrm>"
        "<SeqTp>RCUR</SeqTp></PmtTpInf>"
        f"{_el('ReqdColltnDt', collection_date.isoformat())}"
        f"<Cdtr>{_el('Nm', sepa_text(creditor.name, 70))}</Cdtr>"
        f"<CdtrAcct><Id>{_el('IBAN', creditor.iban)}</Id></CdtrAcct>"
        f"<CdtrAgt>{_agent(creditor.bic)}</CdtrAgt><ChrgBr>SLEV</ChrgBr>"
        f"<CdtrSchmeId><Id><PrvtId><Othr>{_el('Id', creditor.creditor_id)}"
        "<SchmeNm><Prtry>SEPA</Prtry></SchmeNm></Othr></PrvtId></Id></CdtrSchmeId>\n"
    )
    out.write(
        f"<DrctDbtTxInf><PmtId>{_el('EndToEndId', debit.end_to_end_id)}</PmtId>"
        f'<InstdAmt Ccy="EUR">{cents}</InstdAmt>'
        f"<DrctDbtTx><MndtRltdInf>{_el('MndtId', mandate.mandate_id)}"
        f"{_el('DtOfSgntr', mandate.signed_on.isoformat())}</MndtRltdInf></DrctDbtTx>"
        f"<DbtrAgt>{_agent(debit.bic)}</DbtrAgt>"
        f"<Dbtr>{_el('Nm', sepa_text(debit.name, 70))}</Dbtr>"
        f"<DbtrAcct><Id>{_el('IBAN', debit.iban)}</Id></DbtrAcct>"
        f"<RmtInf>{_el('Ustrd', sepa_text(debit.remittance_info, 140))}</RmtInf>"
        "</DrctDbtTxInf>\n</PmtInf></CstmrDrctDbtInitn></Document>\n"
    )
