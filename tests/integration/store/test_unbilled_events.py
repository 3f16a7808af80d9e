"""What the rebuild of the never-invoiced people reads from the audit log
(``store.lookup_history.unbilled_events``): answers without card proof, refusals,
reinstatements and invoices; answers with card proof stay in the database, since they never
enter those sets (``security/guard/restore.py``)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from tierspayant.app.platform import Platform
from tierspayant.security.guard import PastKind
from tierspayant.store import audit
from tierspayant.store.lookup_history import unbilled_events


def test_answers_with_card_proof_are_not_read_and_every_other_kind_is(platform: Platform) -> None:
    actor = f"provider:{uuid.uuid4().hex[:8]}"
    structure = f"FINESS:{uuid.uuid4().int % 10**9:09d}"
    now = platform.now()
    events = [
        # (action, subject, decision, detail)
        ("eligibility.check", "with-proof", "hit", {"proof": True}),
        ("eligibility.check", "no-proof", "hit", {"proof": False}),
        ("calculation", "no-flag", "hit", {}),
        # A value that holds the key's characters is escaped in the canonical JSON: read.
        ("eligibility.check", "tricky", "hit", {"proof": False, "note": '"proof":true'}),
        ("prior_auth.request", "prior-with-proof", "granted", {"proof": True}),
        ("lookup.refused", None, "refused", {"code": "guard.rate", "proof": True}),
        ("principal.reinstate", None, "allow", {"principal": actor}),
        # An invoice with card proof still clears its person: read (no claim row here, so
        # no INVOICE event follows it, only its answer, skipped as one with proof).
        ("claim.receive", "invoiced", "hit", {"proof": True, "claim": 1}),
    ]
    with platform.engine.begin() as conn:
        for n, (action, subject, decision, detail) in enumerate(events):
            audit.append(
                conn,
                at=now + timedelta(seconds=n),
                actor=actor,
                structure=structure,
                action=action,
                decision=decision,
                subject=subject,
                detail=detail,  # type: ignore[arg-type]
            )
    with platform.engine.connect() as conn:
        read = [
            (e.kind, e.subject, e.with_proof)
            for e in unbilled_events(conn, now - timedelta(minutes=1))
            if e.principal_id in (actor, "") or e.kind is PastKind.REINSTATED
        ]
    assert (PastKind.HIT, "no-proof", False) in read
    assert (PastKind.HIT, "no-flag", False) in read
    assert (PastKind.HIT, "tricky", False) in read
    assert (PastKind.HIT, "invoiced", True) in read
    assert any(kind is PastKind.REFUSED for kind, _, _ in read)
    assert any(kind is PastKind.REINSTATED for kind, _, _ in read)
    subjects = {subject for _, subject, _ in read}
    assert "with-proof" not in subjects
    assert "prior-with-proof" not in subjects
