"""Member portal: who consulted my rights and when, and my data-protection access request.

A member sees only events whose subject is their own beneficiary (the audit pseudonym,
computed as ``services.identification`` does), with the structure's name, the date, the
purpose and the decision, and nobody else's data. Each of these reads is itself audited.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from starlette.responses import Response

from tierspayant.domain.identifiers import parse_nir
from tierspayant.security.crypto import FieldCipher
from tierspayant.security.identity import open_column
from tierspayant.services import statements
from tierspayant.services.platform import Platform
from tierspayant.store import audit
from tierspayant.store.beneficiaries import find_by_nir_index
from tierspayant.store.keys import insurer_scope
from tierspayant.store.tables import beneficiaries
from tierspayant.web import queries
from tierspayant.web.policy import policy
from tierspayant.web.render import render
from tierspayant.web.session import Portal, PortalSession, csrf_protect, platform_of, requires

PORTAL = Portal.MEMBER
RULE = policy(PORTAL.rule)
Member = Annotated[PortalSession, Depends(requires(PORTAL))]
ACTIONS = {
    "eligibility.check": "Vérification de droits",
    "calculation": "Simulation de prise en charge",
    "member.consultations": "Consultation de cet historique",
    "member.data_export": "Export de vos données",
}


def _subject(platform: Platform, session: PortalSession) -> tuple[str, int, str]:
    principal = session.info.principal
    assert principal.insurer_id is not None
    assert principal.beneficiary_id is not None
    amc, _ = queries.insurer_amc(platform, principal.insurer_id)
    pseudonym = queries.member_pseudonym(platform, amc, principal.beneficiary_id)
    return amc, principal.beneficiary_id, pseudonym


def _own_history(
    platform: Platform, session: PortalSession, action: str
) -> list[queries.Consultation]:
    """The member's history, read and audited in one transaction."""
    amc, _, subject = _subject(platform, session)
    with queries.write_transaction(platform) as conn:
        rows = queries.consultations(conn, subject)
        audit.append(
            conn,
            at=platform.now(),
            actor=session.info.principal.id,
            action=action,
            purpose="data_subject_access",
            subject=subject,
            insurer=amc,
            decision="allow",
        )
    return rows


def _own_record(platform: Platform, session: PortalSession) -> dict[str, Any]:
    """The member's own identity and coverage, decrypted for them only (NIR masked)."""
    amc, beneficiary_id, _ = _subject(platform, session)
    insurer_id = session.info.principal.insurer_id
    assert insurer_id is not None
    with platform.engine.connect() as conn:
        idx = conn.execute(
            select(beneficiaries.c.idx_nir).where(
                beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id == beneficiary_id
            )
        ).scalar_one()
        record = find_by_nir_index(conn, insurer_id, bytes(idx))
        assert record is not None
        cipher = FieldCipher(platform.keys.version(conn, insurer_scope(amc), record.key_version))

    def clear(column: str, blob: bytes) -> str:
        return open_column(cipher, insurer_id, record.idx_nir, column, blob)

    return {
        "organisme": amc,
        "nir": parse_nir(clear("nir", record.nir_ct)).masked(),
        "rang_de_naissance": record.birth_rank,
        "numero_adherent": clear("member_number", record.member_number_ct),
        "nom": clear("last_name", record.last_name_ct),
        "prenom": clear("first_name", record.first_name_ct),
        "date_de_naissance": clear("birth_date", record.birth_date_ct),
        "contrat": record.contract_code,
        "debut_de_couverture": record.coverage_start.isoformat(),
        "fin_de_couverture": record.coverage_end.isoformat() if record.coverage_end else None,
        "complementaire_sante_solidaire": record.css,
    }


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    @routes.get("/", **RULE)
    def home(request: Request, session: Member) -> Response:
        rows = _own_history(platform_of(request), session, "member.consultations")
        return render(request, "member/home.html", portal=PORTAL, rows=rows, actions=ACTIONS)

    @routes.get("/remboursements", **RULE)
    def statement(request: Request, session: Member) -> Response:
        lines = statements.member_statement(platform_of(request), session.info.principal)
        return render(request, "member/statement.html", portal=PORTAL, lines=lines)

    @routes.get("/mes-donnees", **RULE)
    def export_page(request: Request, session: Member) -> Response:
        return render(request, "member/export.html", portal=PORTAL)

    @routes.post("/mes-donnees", **RULE)
    def export(request: Request, session: Member) -> Response:
        platform = platform_of(request)
        history = _own_history(platform, session, "member.data_export")
        document = {
            "genere_le": platform.now().isoformat(),
            "mes_droits": _own_record(platform, session),
            "consultations": [
                {
                    "date": row.at.isoformat(),
                    "par": row.who,
                    "structure": row.structure,
                    "action": ACTIONS.get(row.action, row.action),
                    "finalite": row.purpose,
                    "decision": row.decision,
                }
                for row in history
            ],
        }
        body = json.dumps(document, ensure_ascii=False, indent=2)
        return Response(
            body,
            media_type="application/json",
            headers={
                "content-disposition": 'attachment; filename="mes-donnees-tierspayant.json"',
                "cache-control": "no-store",
            },
        )

    return routes
