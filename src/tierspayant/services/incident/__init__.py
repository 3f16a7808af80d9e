"""Incident response: who was read, the notices to draft, and cutting an account off.

**Scope.** Given a principal (or a structure) and a time window, the audit log says
exactly which beneficiaries were disclosed, per insurer. Events name people only by a
keyed pseudonym of (insurer, internal id); scoping reads the events of the window through
the (actor, at) or (structure, at) index and maps the pseudonyms of the people read back
to ids through the subject index (``subjects``: one keyed lookup per person read, never a
pass over the beneficiaries), so the log itself never holds anything identifying.

Which events disclosed is read from the events themselves, never guessed from a list of
decisions that a new one would escape: every answer about a person (rights check,
calculation, prior authorisation, invoice receipt, card-proof refusal) records
``detail["disclosed"]`` (:data:`tierspayant.security.audit.DISCLOSED`), True when the
answer differed from the one an unknown person gets. Events written before that field
existed are classified by :data:`LEGACY_ANSWERS` (a refused prior authorisation by the
reason code stored with its agreement). Any other event naming a subject counts unless
its decision is a refusal (:data:`REFUSALS`): over-notifying is the safe side.

**Reveal.** Names and NIR are decrypted only with ``reveal``, for a responder holding an
approved bulk/export break-glass grant; each revealed person is one audit event; the NIR
stays masked unless explicitly asked for.

**Notices.** Drafts, in French, of the notification to the CNIL (GDPR art. 33) and one
letter per affected person (art. 34), to be completed and sent by the insurer (the
controller; the operator is its processor).

**Revoke.** Suspend a principal, revoke its tokens and end its portal sessions at once.

The package's modules: ``scope`` (and reveal), ``files`` (the scope written as JSON or
CSV, and read back), ``notices`` (the drafts, from a scope document) and ``revocation``.
Every name callers use is re-exported here.
"""

from tierspayant.services.incident.files import (
    CSV_COLUMNS,
    load_scope_document,
    scope_document,
    write_scope,
)
from tierspayant.services.incident.notices import NoticeContext, NoticeFiles, draft_notices
from tierspayant.services.incident.revocation import Revocation, revoke
from tierspayant.services.incident.scope import (
    LEGACY_ANSWERS,
    NO_RIGHTS_REASON,
    PSEUDONYM_PURPOSE,
    REFUSALS,
    IncidentScope,
    InsurerScope,
    Reveal,
    ScopeCriteria,
    ScopedRecord,
    scope_incident,
)

__all__ = [
    "CSV_COLUMNS",
    "LEGACY_ANSWERS",
    "NO_RIGHTS_REASON",
    "PSEUDONYM_PURPOSE",
    "REFUSALS",
    "IncidentScope",
    "InsurerScope",
    "NoticeContext",
    "NoticeFiles",
    "Reveal",
    "Revocation",
    "ScopeCriteria",
    "ScopedRecord",
    "draft_notices",
    "load_scope_document",
    "revoke",
    "scope_document",
    "scope_incident",
    "write_scope",
]
