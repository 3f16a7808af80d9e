"""pain.002.001.03 status reports as a bank sends them, for the returned fund call tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tierspayant.formats.sepa_status import PAIN_002


@dataclass(frozen=True, slots=True)
class Tx:
    end_to_end_id: str
    status: str = "RJCT"
    reason: str | None = "AM04"
    amount: str | None = None  # repeated under OrgnlTxRef when given


def status_report(
    transactions: Sequence[Tx],
    *,
    message_id: str = "BANKSTS-0001",
    created: str = "2026-07-14T08:30:00",
    original_message_id: str = "TP-BILL-2026-06-1",
    block_reason: str | None = None,
) -> bytes:
    """A status report with one payment block holding ``transactions``."""
    txs = []
    for n, tx in enumerate(transactions, start=1):
        reason = (
            f"<StsRsnInf><Orgtr><Nm>Banque</Nm></Orgtr><Rsn><Cd>{tx.reason}</Cd></Rsn></StsRsnInf>"
            if tx.reason
            else ""
        )
        reference = (
            f'<OrgnlTxRef><Amt><InstdAmt Ccy="EUR">{tx.amount}</InstdAmt></Amt>'
            "<ReqdColltnDt>2026-07-10</ReqdColltnDt></OrgnlTxRef>"
            if tx.amount
            else ""
        )
        txs.append(
            f"<TxInfAndSts><StsId>STS{n}</StsId><OrgnlEndToEndId>{tx.end_to_end_id}"
            f"</OrgnlEndToEndId><TxSts>{tx.status}</TxSts>{reason}{reference}</TxInfAndSts>"
        )
    block = (
        f"<PmtInfSts>RJCT</PmtInfSts><StsRsnInf><Rsn><Cd>{block_reason}</Cd></Rsn></StsRsnInf>"
        if block_reason
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Document xmlns="{PAIN_002}"><CstmrPmtStsRpt>'
        f"<GrpHdr><MsgId>{message_id}</MsgId><CreDtTm>{created}</CreDtTm>"
        "<InitgPty><Nm>Banque de l'operateur</Nm></InitgPty></GrpHdr>"
        f"<OrgnlGrpInfAndSts><OrgnlMsgId>{original_message_id}</OrgnlMsgId>"
        "<OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId><GrpSts>PART</GrpSts></OrgnlGrpInfAndSts>"
        f"<OrgnlPmtInfAndSts><OrgnlPmtInfId>{original_message_id}</OrgnlPmtInfId>{block}"
        f"{''.join(txs)}</OrgnlPmtInfAndSts>"
        "</CstmrPmtStsRpt></Document>\n"
    ).encode()
