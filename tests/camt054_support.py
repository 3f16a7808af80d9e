"""camt.054.001.02 notifications as the operator's bank sends them when a credit transfer
to a provider comes back (a credit entry with return information), for the returns tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CAMT_054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.02"


@dataclass(frozen=True, slots=True)
class Returned:
    end_to_end_id: str
    amount: str  # as the transfer said it: 10.50
    reason: str | None = "AC04"  # closed account


def notification(
    returns: Sequence[Returned],
    *,
    message_id: str = "CAMT054-0001",
    created: str = "2026-11-13T07:15:00",
    other_entries: int = 1,
) -> bytes:
    """A notification of the operator's account: one credit entry per return (a return
    of a SEPA credit transfer, PMNT/ICDT/RRTN) and ``other_entries`` ordinary credits."""
    entries = []
    for n, item in enumerate(returns, start=1):
        reason = (
            f"<RtrInf><OrgnlBkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd>"
            f"<SubFmlyCd>ESCT</SubFmlyCd></Fmly></Domn></OrgnlBkTxCd>"
            f"<Orgtr><Nm>Banque du beneficiaire</Nm></Orgtr>"
            f"<Rsn><Cd>{item.reason}</Cd></Rsn></RtrInf>"
            if item.reason
            else "<RtrInf><AddtlInf>retour</AddtlInf></RtrInf>"
        )
        entries.append(
            f'<Ntry><NtryRef>R{n}</NtryRef><Amt Ccy="EUR">{item.amount}</Amt>'
            "<CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts>"
            "<BookgDt><Dt>2026-11-13</Dt></BookgDt><ValDt><Dt>2026-11-13</Dt></ValDt>"
            f"<AcctSvcrRef>RET{n:06d}</AcctSvcrRef>"
            "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>ICDT</Cd><SubFmlyCd>RRTN</SubFmlyCd>"
            "</Fmly></Domn></BkTxCd>"
            "<NtryDtls><TxDtls><Refs><MsgId>TP-PAY-RET</MsgId>"
            f"<EndToEndId>{item.end_to_end_id}</EndToEndId></Refs>"
            f'<AmtDtls><TxAmt><Amt Ccy="EUR">{item.amount}</Amt></TxAmt></AmtDtls>'
            f"{reason}</TxDtls></NtryDtls></Ntry>"
        )
    for n in range(other_entries):
        entries.append(
            f'<Ntry><Amt Ccy="EUR">{100 + n}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
            "<Sts>BOOK</Sts><BookgDt><Dt>2026-11-13</Dt></BookgDt>"
            "<BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RCDT</Cd><SubFmlyCd>ESCT</SubFmlyCd>"
            "</Fmly></Domn></BkTxCd><NtryDtls><TxDtls><Refs>"
            f"<EndToEndId>CLIENT-{n}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{CAMT_054}"><BkToCstmrDbtCdtNtfctn>'
        f"<GrpHdr><MsgId>{message_id}</MsgId><CreDtTm>{created}</CreDtTm></GrpHdr>"
        f"<Ntfctn><Id>NTF-{message_id}</Id><CreDtTm>{created}</CreDtTm>"
        "<Acct><Id><IBAN>FR7630006000011234567890189</IBAN></Id></Acct>"
        f"{''.join(entries)}</Ntfctn></BkToCstmrDbtCdtNtfctn></Document>\n"
    ).encode()
