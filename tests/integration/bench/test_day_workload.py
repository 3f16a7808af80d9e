"""The workload of the adjudication and day benchmarks (bench/bench_adjudication.py), at a
small size: every kind of decision is in it, adjudication matches the generator's own
count on both engines, and the check catches a decision that differs."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.bench_adjudication import Expected, check_decisions, seed, store_claims
from sqlalchemy import update

from tierspayant.app.platform import Platform
from tierspayant.domain.adjudication import Reason
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.store.claims_tables import claim_lines

KINDS = {
    ("accepted", None),
    ("reduced", Reason.ABOVE_GUARANTEE.value),
    ("reduced", Reason.CEILING_REACHED.value),
    ("rejected", Reason.CEILING_REACHED.value),
    ("rejected", Reason.ACT_UNKNOWN.value),
    ("rejected", Reason.RIGHTS_NONE.value),
    ("rejected", Reason.DUPLICATE.value),
}


def test_adjudication_matches_the_workloads_own_count(platform: Platform, tmp_path: Path) -> None:
    seeded = seed(platform, tmp_path, 400, pharmacies=2, dentists=1)
    expected = store_claims(platform, seeded, 1500)
    assert isinstance(expected, Expected)
    assert expected.lines == 1500
    assert set(expected.outcomes) >= KINDS  # not a workload where everything is accepted
    assert 0 < expected.posted_claims < expected.claims

    done = adjudicate_pending(platform)
    assert done.lines == 1500
    assert done.accepted_cents == expected.accepted_cents
    assert check_decisions(platform, expected)["checked"]

    # One accepted line turned into a refusal: the check names the difference.
    with platform.engine.begin() as conn:
        first = conn.execute(
            claim_lines.select().where(claim_lines.c.status == "accepted").limit(1)
        ).one()
        conn.execute(
            update(claim_lines)
            .where(
                claim_lines.c.insurer_id == first.insurer_id,
                claim_lines.c.claim_id == first.claim_id,
                claim_lines.c.line_no == first.line_no,
            )
            .values(status="rejected", reason_code=Reason.ACT_UNKNOWN.value)
        )
    with pytest.raises(SystemExit, match=r"rejected/act\.unknown"):
        check_decisions(platform, expected)
