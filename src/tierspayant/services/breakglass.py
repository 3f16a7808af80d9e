"""Break-glass: the only way operator staff reach personal data.

An operator asks for a grant with a stated reason, a time limit and a scope:

- ``beneficiary``: one named beneficiary of one insurer, usable at once (support case);
- ``bulk`` or ``export``: many people (incident response, an insurer's request), usable
  only once a *second* operator, not the requester, has approved it.

Every request, approval, use and closing appends an audit event, and a notice to the DPO
(data protection officer) is written as a file and logged when a grant is requested and
when it becomes usable, so the DPO learns of each access without asking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog
from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.codes import AuthCode, DirectoryCode, IncidentCode
from tierspayant.domain.identifiers import parse_nir
from tierspayant.security.audit import subject_pseudonym
from tierspayant.security.crypto import FieldCipher
from tierspayant.security.identity import open_column
from tierspayant.services.errors import Conflict, Forbidden, NotFound, ServiceError
from tierspayant.services.insurers import get_insurer
from tierspayant.store import audit
from tierspayant.store import breakglass as store
from tierspayant.store.beneficiaries import BeneficiaryRecord, beneficiary_exists, record_by_id
from tierspayant.store.insurers import amc_number_of
from tierspayant.store.keys import insurer_scope

log = structlog.get_logger("tierspayant.breakglass")

MAX_HOURS = 72
MIN_REASON = 15
DPO_DIR = "dpo-notices"


class GrantScope(StrEnum):
    BENEFICIARY = "beneficiary"
    BULK = "bulk"
    EXPORT = "export"

    @property
    def needs_second_approver(self) -> bool:
        return self is not GrantScope.BENEFICIARY


@dataclass(frozen=True, slots=True)
class Grant:
    """A break-glass grant as stored (``usable`` says whether it opens data right now)."""

    id: int
    requester: str
    reason: str
    scope: GrantScope
    insurer_id: int | None
    beneficiary_id: int | None
    status: str
    requested_at: datetime
    expires_at: datetime
    approver: str | None
    dpo_notice: str | None

    def usable_at(self, now: datetime) -> bool:
        return self.status == "active" and now < self.expires_at


@dataclass(frozen=True, slots=True)
class RevealedIdentity:
    """Identity fields opened under a grant; the NIR is masked unless asked otherwise."""

    last_name: str
    first_name: str
    nir: str


def _grant(row: store.GrantRow) -> Grant:
    return Grant(
        id=row.id,
        requester=row.requester,
        reason=row.reason,
        scope=GrantScope(row.scope),
        insurer_id=row.insurer_id,
        beneficiary_id=row.beneficiary_id,
        status=row.status,
        requested_at=row.requested_at,
        expires_at=row.expires_at,
        approver=row.approver,
        dpo_notice=row.dpo_notice,
    )


def _load(conn: Connection, grant_id: int) -> Grant:
    row = store.grant_by_id(conn, grant_id)
    if row is None:
        raise NotFound(IncidentCode.BREAKGLASS_NOT_FOUND, f"no break-glass grant {grant_id}")
    return _grant(row)


def _check_request(actor: str, reason: str, hours: int) -> None:
    if not actor.startswith("operator:") or len(actor) > 120:
        raise Forbidden(AuthCode.FORBIDDEN, "only operator staff (operator:NAME) may break glass")
    if not MIN_REASON <= len(reason.strip()) <= 500:
        raise ServiceError(
            IncidentCode.BREAKGLASS_REASON,
            f"state the reason in {MIN_REASON} to 500 characters (ticket, case, request)",
            field="reason",
        )
    if not 1 <= hours <= MAX_HOURS:
        raise ServiceError(
            IncidentCode.BREAKGLASS_DURATION, f"a grant lasts 1 to {MAX_HOURS} hours", field="hours"
        )


def request_grant(
    platform: Platform,
    actor: str,
    reason: str,
    scope: GrantScope,
    hours: int,
    *,
    insurer_amc: str | None = None,
    beneficiary_id: int | None = None,
) -> Grant:
    """Record a request; a one-beneficiary grant is usable at once, others wait."""
    _check_request(actor, reason, hours)
    now = platform.now()
    with platform.engine.begin() as conn:
        insurer_id = get_insurer(conn, insurer_amc).id if insurer_amc else None
        if scope is GrantScope.BENEFICIARY:
            _check_beneficiary(conn, insurer_id, beneficiary_id)
        status = "pending" if scope.needs_second_approver else "active"
        grant_id = store.insert_grant(
            conn,
            requester=actor,
            reason=reason.strip(),
            scope=scope.value,
            insurer_id=insurer_id,
            beneficiary_id=beneficiary_id,
            status=status,
            requested_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        grant = _load(conn, grant_id)
        notice = _notify_dpo(platform, conn, grant, "request")
        store.set_dpo_notice(conn, grant.id, notice)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="breakglass.request",
            purpose="break_glass",
            decision="allow" if status == "active" else "pending",
            subject=_subject(platform, conn, grant),
            insurer=insurer_amc,
            detail={"grant": grant.id, "scope": scope.value, "hours": hours},
        )
        return _load(conn, grant.id)


def _check_beneficiary(
    conn: Connection, insurer_id: int | None, beneficiary_id: int | None
) -> None:
    if insurer_id is None or beneficiary_id is None:
        raise ServiceError(
            IncidentCode.BREAKGLASS_TARGET,
            "a one-beneficiary grant names the insurer and the beneficiary",
        )
    if not beneficiary_exists(conn, insurer_id, beneficiary_id):
        raise NotFound(IncidentCode.BREAKGLASS_TARGET, "no such beneficiary for this insurer")


def approve_grant(platform: Platform, grant_id: int, approver: str) -> Grant:
    """Second approval of a bulk or export grant, by an operator other than the requester."""
    if not approver.startswith("operator:"):
        raise Forbidden(AuthCode.FORBIDDEN, "only operator staff may approve a grant")
    now = platform.now()
    with platform.engine.begin() as conn:
        grant = _load(conn, grant_id)
        if grant.status != "pending":
            raise Conflict(
                IncidentCode.BREAKGLASS_NOT_PENDING, "this grant is not waiting for approval"
            )
        if grant.expires_at <= now:
            raise Conflict(
                IncidentCode.BREAKGLASS_EXPIRED, "this grant expired before its approval"
            )
        if approver == grant.requester:
            raise Forbidden(
                IncidentCode.BREAKGLASS_SECOND_APPROVER_REQUIRED,
                "a second operator, not the requester, must approve",
            )
        store.activate(conn, grant_id, approver, now)
        grant = _load(conn, grant_id)
        _notify_dpo(platform, conn, grant, "approval")
        audit.append(
            conn,
            at=now,
            actor=approver,
            action="breakglass.approve",
            purpose="break_glass",
            decision="allow",
            detail={"grant": grant_id, "requester": grant.requester, "scope": grant.scope.value},
        )
        return grant


def close_grant(platform: Platform, grant_id: int, actor: str) -> Grant:
    """End a grant before its time limit (idempotent)."""
    now = platform.now()
    with platform.engine.begin() as conn:
        grant = _load(conn, grant_id)
        if grant.status != "closed":
            store.close(conn, grant_id)
            audit.append(
                conn,
                at=now,
                actor=actor,
                action="breakglass.close",
                purpose="break_glass",
                decision="allow",
                detail={"grant": grant_id},
            )
        return _load(conn, grant_id)


def list_grants(platform: Platform, *, usable_only: bool = False) -> list[Grant]:
    """Grants, newest first (``usable_only``: those that open data right now)."""
    now = platform.now()
    with platform.engine.connect() as conn:
        grants = [_grant(row) for row in store.all_grants(conn)]
    return [g for g in grants if g.usable_at(now)] if usable_only else grants


def require_grant(
    conn: Connection,
    grant_id: int,
    actor: str,
    now: datetime,
    scopes: frozenset[GrantScope],
) -> Grant:
    """The grant ``actor`` holds, if usable now for one of ``scopes``; else Forbidden."""
    row = store.grant_by_id(conn, grant_id)
    grant = None if row is None else _grant(row)
    if (
        grant is None
        or grant.requester != actor
        or grant.scope not in scopes
        or not grant.usable_at(now)
    ):
        raise Forbidden(
            IncidentCode.BREAKGLASS_NO_GRANT,
            "no usable break-glass grant: request one (and have it approved for bulk access)",
        )
    return grant


def reveal_beneficiary(platform: Platform, grant_id: int, actor: str) -> RevealedIdentity:
    """Open the identity of the one beneficiary a grant names (masked NIR), audited."""
    now = platform.now()
    with platform.engine.begin() as conn:
        grant = require_grant(conn, grant_id, actor, now, frozenset({GrantScope.BENEFICIARY}))
        assert grant.insurer_id is not None
        assert grant.beneficiary_id is not None
        amc = amc_number_of(conn, grant.insurer_id)
        record = load_record(conn, grant.insurer_id, grant.beneficiary_id)
        identity = open_identity(platform, conn, amc, record, show_nir=False)
        audit.append(
            conn,
            at=now,
            actor=actor,
            action="breakglass.reveal",
            purpose="break_glass",
            decision="allow",
            subject=_subject(platform, conn, grant),
            insurer=amc,
            detail={"grant": grant.id, "nir": "masked"},
        )
        return identity


def load_record(conn: Connection, insurer_id: int, beneficiary_id: int) -> BeneficiaryRecord:
    """One beneficiary row, still sealed."""
    record = record_by_id(conn, insurer_id, beneficiary_id)
    if record is None:
        raise NotFound(DirectoryCode.BENEFICIARY_NOT_FOUND, "no such beneficiary")
    return record


def open_identity(
    platform: Platform, conn: Connection, amc: str, record: BeneficiaryRecord, *, show_nir: bool
) -> RevealedIdentity:
    """Decrypt names and NIR of one row (the caller holds a grant and audits the read)."""
    keys = platform.keys.version(conn, insurer_scope(amc), record.key_version)
    cipher = FieldCipher(keys)

    def column(name: str, blob: bytes) -> str:
        return open_column(cipher, record.insurer_id, record.idx_nir, name, blob)

    nir = parse_nir(column("nir", record.nir_ct))
    return RevealedIdentity(
        last_name=column("last_name", record.last_name_ct),
        first_name=column("first_name", record.first_name_ct),
        nir=nir.value if show_nir else nir.masked(),
    )


def _subject(platform: Platform, conn: Connection, grant: Grant) -> str | None:
    if grant.insurer_id is None or grant.beneficiary_id is None:
        return None
    key = platform.operator_keys().derive("audit.subject")
    return subject_pseudonym(key, amc_number_of(conn, grant.insurer_id), str(grant.beneficiary_id))


def _notify_dpo(platform: Platform, conn: Connection, grant: Grant, step: str) -> str:
    """Write the DPO notice of this step (French, no personal data) and log it."""
    directory = platform.settings.data_dir / DPO_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"breakglass-{grant.id:06d}.md"
    target = (
        f"un bénéficiaire (assureur {amc_number_of(conn, grant.insurer_id)}, identifiant interne "
        f"{grant.beneficiary_id})"
        if grant.scope is GrantScope.BENEFICIARY and grant.insurer_id is not None
        else f"accès {'en masse' if grant.scope is GrantScope.BULK else 'par export'}"
    )
    state = "en attente d'un second approbateur" if grant.status == "pending" else "actif"
    lines = [
        f"## Accès d'urgence n° {grant.id} — {'demande' if step == 'request' else 'approbation'}",
        "",
        f"- Demandeur : {grant.requester}",
        f"- Motif : {grant.reason}",
        f"- Périmètre : {target}",
        f"- Valable jusqu'au : {grant.expires_at:%d/%m/%Y %H:%M} UTC",
        f"- État : {state}",
    ]
    if grant.approver:
        lines.append(f"- Approuvé par : {grant.approver}")
    with path.open("a", encoding="utf-8") as notice:
        notice.write("\n".join(lines) + "\n\n")
    log.info("breakglass.dpo_notice", grant=grant.id, step=step, file=str(path))
    return str(path)[:300]
