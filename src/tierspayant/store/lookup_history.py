"""The guard's past, read back from the audit log: what it counted, to rebuild its counters.

:class:`AuditLookupHistory` is the guard's
:class:`~tierspayant.security.guard.LookupHistory`: the answered lookups (rights checks,
calculations, prior authorisations, invoices received through the API), the guard's
refusals and step-up requests, misread scans and reinstatements of a recent window, the
signals recorded in ``security_alerts`` over it, and the principals suspended in the
database; over the never-invoiced window (30 days), the answers, refusals and
reinstatements again with the invoices received (``claim.receive`` with a subject, from
the API or a file, their day of care read from ``claims``). The log has no index on time
alone, so the window's first position is found by bisecting the chain (``at`` grows with
``seq``, give or take the seconds an event waits for its group commit), then read from
there.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Engine, func, not_, or_, select

from tierspayant.domain.codes import GuardCode
from tierspayant.security.guard import PastEvent, PastKind
from tierspayant.security.principal import PrincipalKind
from tierspayant.store.claims_tables import claims
from tierspayant.store.security_tables import security_alerts
from tierspayant.store.tables import audit_events, insurers, principals

# The actions of answers that went through the guard (``services.lookup``): each one was
# observed as a hit (a subject) or a miss. An invoice from an operator's file did not.
LOOKUP_ACTIONS = frozenset(
    {"eligibility.check", "calculation", "prior_auth.request", "claim.receive"}
)
REFUSAL_ACTION = "lookup.refused"
MISREAD_ACTION = "card.proof_misread"
REINSTATE_ACTION = "principal.reinstate"
INVOICE_ACTION = "claim.receive"
_WITH_PROOF = '"proof":true'  # in an event's canonical JSON detail
_ACTIONS = LOOKUP_ACTIONS | {REFUSAL_ACTION, MISREAD_ACTION, REINSTATE_ACTION}
# Events are stamped when built, then appended by the group-commit writer: the chain's
# order may lag the stamps by that much, far less than this margin.
BISECT_MARGIN = timedelta(hours=1)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def first_seq_since(conn: Connection, since: datetime, margin: timedelta = BISECT_MARGIN) -> int:
    """A chain position at or before the first event stamped ``since`` or later (0 when
    the log is empty): bisection over ``seq``, ``margin`` earlier for safety."""
    bounds = conn.execute(select(func.min(audit_events.c.seq), func.max(audit_events.c.seq))).one()
    if bounds[0] is None:
        return 0
    target = _utc(since - margin)
    lo, hi = int(bounds[0]), int(bounds[1]) + 1
    # Invariant: every event before ``lo`` is stamped before ``target``; ``hi`` is past
    # the end or stamped at or after it.
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(
            select(audit_events.c.seq, audit_events.c.at)
            .where(audit_events.c.seq >= mid)
            .order_by(audit_events.c.seq)
            .limit(1)
        ).first()
        if row is None or _utc(row[1]) >= target:
            hi = mid
        else:
            lo = int(row[0]) + 1
    return lo


def _event(
    at: datetime,
    actor: str,
    structure: str | None,
    action: str,
    subject: str | None,
    decision: str,
    detail_text: str,
    kind: str | None,
) -> Iterator[PastEvent]:
    yield from _parsed(
        at, actor, structure, action, subject, decision, json.loads(detail_text), kind
    )


def _parsed(
    at: datetime,
    actor: str,
    structure: str | None,
    action: str,
    subject: str | None,
    decision: str,
    detail: dict[str, Any],
    kind: str | None,
) -> Iterator[PastEvent]:
    at = _utc(at)
    human = kind == PrincipalKind.PROVIDER_USER.value
    if action == MISREAD_ACTION:
        yield PastEvent(at, PastKind.MISREAD, actor, structure, human=human)
        return
    if action == REINSTATE_ACTION:
        reinstated = detail.get("principal")
        if isinstance(reinstated, str):
            yield PastEvent(at, PastKind.REINSTATED, reinstated)
        return
    code = str(detail.get("code", ""))
    if action == REFUSAL_ACTION:
        refused = PastKind.STEP_UP if decision == "step_up" else PastKind.REFUSED
        yield PastEvent(at, refused, actor, structure, human=human, code=code)
        return
    if detail.get("source") == "file":
        return
    # An answer without the flag (an invoice, a calculation refused for its reservations)
    # counts as one without card proof: the stricter reading.
    with_proof = detail.get("proof") is True
    hit = PastKind.HIT if subject is not None else PastKind.MISS
    yield PastEvent(at, hit, actor, structure, subject, with_proof, human)
    if decision == "step_up":
        yield PastEvent(at, PastKind.STEP_UP, actor, code=code, after_answer=True)
    elif decision == "deny" and code == GuardCode.STEP_UP_IGNORED:
        yield PastEvent(at, PastKind.REFUSED, actor, code=code, after_answer=True)


# What each reader of the guard's events takes of an event, in this order.
_EVENT_COLUMNS: Final = (
    audit_events.c.at,
    audit_events.c.actor,
    audit_events.c.structure,
    audit_events.c.action,
    audit_events.c.subject,
    audit_events.c.decision,
    audit_events.c.detail,
)


def _window(conn: Connection, since: datetime) -> tuple[ColumnElement[bool], ...]:
    """The events stamped ``since`` or later: a range of the chain found by bisection
    (:func:`first_seq_since`), then the stamps themselves."""
    return audit_events.c.seq >= first_seq_since(conn, since), audit_events.c.at >= _utc(since)


def past_events(conn: Connection, since: datetime) -> Iterator[PastEvent]:
    """The guard's events stamped ``since`` or later, in chain order, streamed."""
    query = (
        select(*_EVENT_COLUMNS, principals.c.kind)
        .select_from(audit_events.outerjoin(principals, principals.c.id == audit_events.c.actor))
        .where(*_window(conn, since), audit_events.c.action.in_(sorted(_ACTIONS)))
        .order_by(audit_events.c.seq)
    )
    for row in conn.execute(query.execution_options(yield_per=10_000)):
        yield from _event(*row)


# How many events of the never-invoiced window are read before their invoices' days of
# care are looked up (one query per insurer met): the memory a rebuild holds at once.
UNBILLED_CHUNK = 5_000


def unbilled_events(
    conn: Connection, since: datetime, chunk: int = UNBILLED_CHUNK
) -> Iterator[PastEvent]:
    """The events the never-invoiced people are rebuilt from, stamped ``since`` or later,
    in chain order, streamed: the answers, refusals and reinstatements as
    :func:`past_events` reads them (answers from a file aside), and after each invoice
    received about someone (``claim.receive`` with a subject, from the API or a file: each
    one was told to the guard) an ``INVOICE`` event with its day of care."""
    query = (
        select(*_EVENT_COLUMNS, audit_events.c.insurer)
        .where(
            *_window(conn, since),
            audit_events.c.action.in_(sorted(LOOKUP_ACTIONS | {REFUSAL_ACTION, REINSTATE_ACTION})),
            # An answer with card proof never enters these sets (``_Unbilled.replay``
            # skips it): left in the database, it costs neither a row sent nor a JSON
            # parse. An invoice stays whatever its proof: it clears people. (The detail is
            # canonical JSON: a string value holding these characters is escaped, so only
            # the key itself matches.)
            or_(
                audit_events.c.action.in_([INVOICE_ACTION, REFUSAL_ACTION, REINSTATE_ACTION]),
                not_(audit_events.c.detail.contains(_WITH_PROOF, autoescape=True)),
            ),
        )
        .order_by(audit_events.c.seq)
    )
    rows: list[tuple[Any, ...]] = []
    for row in conn.execute(query.execution_options(yield_per=10_000)):
        rows.append(tuple(row))
        if len(rows) >= chunk:
            yield from _with_invoices(conn, rows)
            rows = []
    yield from _with_invoices(conn, rows)


def _with_invoices(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> Iterator[PastEvent]:
    """The events of ``rows``, each invoice's ``INVOICE`` after its answer."""
    parsed = [json.loads(row[6]) for row in rows]
    wanted: dict[str, set[int]] = defaultdict(set)
    for row, detail in zip(rows, parsed, strict=True):
        if row[3] == INVOICE_ACTION and row[4] is not None and row[7] is not None:
            claim = detail.get("claim")
            if isinstance(claim, int):
                wanted[row[7]].add(claim)
    care = _care_days(conn, wanted)
    for row, detail in zip(rows, parsed, strict=True):
        at, actor, structure, action, subject, decision, _, insurer = row
        # Answers are counted as in ``past_events``; the principal's kind (its pace) is
        # not needed here.
        yield from _parsed(at, actor, structure, action, subject, decision, detail, None)
        if action == INVOICE_ACTION and subject is not None:
            day = care.get((insurer, detail.get("claim")))
            if day is not None:
                yield PastEvent(_utc(at), PastKind.INVOICE, actor, structure, subject, care=day)


def _care_days(conn: Connection, wanted: dict[str, set[int]]) -> dict[tuple[str, int], date]:
    """The day of care of each claim named by (insurer AMC number, claim id)."""
    found: dict[tuple[str, int], date] = {}
    for amc, ids in wanted.items():
        query = (
            select(claims.c.id, claims.c.care_date)
            .select_from(claims.join(insurers, insurers.c.id == claims.c.insurer_id))
            .where(insurers.c.amc_number == amc, claims.c.id.in_(sorted(ids)))
        )
        for claim_id, care_date in conn.execute(query):
            found[(amc, int(claim_id))] = care_date
    return found


def suspended_principals(conn: Connection) -> list[str]:
    """Every principal whose status is ``suspended``."""
    return list(
        conn.execute(select(principals.c.id).where(principals.c.status == "suspended")).scalars()
    )


def past_alerts(conn: Connection, since: datetime) -> list[PastEvent]:
    """The signals recorded from ``since`` on, as ``ALERT`` events."""
    rows = conn.execute(
        select(
            security_alerts.c.at,
            security_alerts.c.principal,
            security_alerts.c.structure,
            security_alerts.c.code,
        )
        .where(security_alerts.c.at >= _utc(since))
        .order_by(security_alerts.c.id)
    )
    return [
        PastEvent(_utc(at), PastKind.ALERT, principal or "", structure, code=code)
        for at, principal, structure, code in rows
    ]


class AuditLookupHistory:
    """The guard's :class:`~tierspayant.security.guard.LookupHistory` over the audit log."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def past_events(self, since: datetime) -> Iterator[PastEvent]:
        """See :meth:`LookupHistory.past_events`: one read transaction."""
        with self.engine.connect() as conn:
            yield from past_events(conn, since)

    def suspended_principals(self) -> list[str]:
        """See :meth:`LookupHistory.suspended_principals`."""
        with self.engine.connect() as conn:
            return suspended_principals(conn)

    def past_alerts(self, since: datetime) -> list[PastEvent]:
        """See :meth:`LookupHistory.past_alerts`."""
        with self.engine.connect() as conn:
            return past_alerts(conn, since)

    def unbilled_events(self, since: datetime) -> Iterator[PastEvent]:
        """See :meth:`LookupHistory.unbilled_events`: one read transaction."""
        with self.engine.connect() as conn:
            yield from unbilled_events(conn, since)
