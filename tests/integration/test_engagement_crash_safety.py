"""Adjudication of invoices carrying engagements on amounts, killed with SIGKILL at a
point of the run, then run again: the same decisions as a run never interrupted, each
``engagement`` posting once, each reservation consumed once, a balanced ledger.

The rights of the people ended retroactively after the calculations, so every line is
paid only because of its engagement (the money path of docs/money.md). A child process
adjudicates the batch, one claim a transaction, and stops at a point — inside a claim's
transaction, after its postings are written but before the commit, or between two
committed claims — writes a marker and waits; the test kills it (the harness of
``test_crash_safety.py``), then the run is done again in the test's process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.integration.claims_world import ACTOR, CARE_DAY, NOW, World
from tests.integration.test_amount_engagements import calc, devices
from tests.integration.test_counter_binds import invoice_of
from tests.integration.test_counter_binds import world as world
from tests.integration.test_crash_safety import kill_when_marked
from tierspayant.domain.claims import ClaimContent
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.claims import ClaimSubmission, get_claim, submit_claim
from tierspayant.services.engagements import provider_engagements
from tierspayant.services.enrolment import import_beneficiaries
from tierspayant.services.ledger_check import check_ledger
from tierspayant.store.claims_tables import amount_reservations, claims
from tierspayant.store.ledger_tables import ledger_postings

PEOPLE = (0, 1, 2)
TODAY = NOW.date()

CHILD = """
import sys, time
from datetime import datetime
from pathlib import Path
from tierspayant.config import load_settings
from tierspayant.services import adjudication
from tierspayant.app.platform import open_platform

point, wanted, marker, clock, amc = sys.argv[1:]
now = datetime.fromisoformat(clock)
platform = open_platform(load_settings(), clock=lambda: now)
posted = 0
original = adjudication._post

def post(*args, **kwargs):  # inside the claim's transaction, its postings written
    global posted
    original(*args, **kwargs)
    posted += 1
    if point == "in-transaction" and posted == int(wanted):
        Path(marker).write_text(f"{point}:{wanted}")
        time.sleep(120)  # killed here, before the commit

def progress(batch):
    if point == "between-claims" and posted == int(wanted):
        Path(marker).write_text(f"{point}:{wanted}")
        time.sleep(120)  # killed here, the claim committed

adjudication._post = post
adjudication.adjudicate_pending(platform, insurer_amc=amc, batch_size=1, progress=progress)
print("done")
"""


def _end_rights(world: World, tmp_path: Path) -> None:
    """A full import dated before the care day that leaves :data:`PEOPLE` out."""
    source = tmp_path / f"people-{world.insurer.amc_number}.csv"
    rows = source.read_text(encoding="utf-8").splitlines()
    kept = [rows[0]] + [row for n, row in enumerate(rows[1:]) if n not in PEOPLE]
    path = tmp_path / "people-ended.csv"
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    summary = import_beneficiaries(
        world.platform,
        world.insurer.amc_number,
        path,
        mode="full",
        file_date=CARE_DAY - timedelta(days=20),
        actor=ACTOR,
        confirm_terminations=len(PEOPLE),
    )
    assert summary.rejected == 0


def _counts(world: World, claim_ids: list[int]) -> tuple[int, int, list[int | None]]:
    """(received claims, engagement postings, the claims consuming the reservations, in
    order: an id twice would be a reservation consumed twice)."""
    with world.platform.engine.connect() as conn:
        received = conn.execute(
            select(func.count())
            .select_from(claims)
            .where(claims.c.id.in_(claim_ids), claims.c.status == "received")
        ).scalar_one()
        postings = conn.execute(
            select(func.count())
            .select_from(ledger_postings)
            .where(
                ledger_postings.c.journal == "engagement",
                ledger_postings.c.insurer_id == world.insurer.id,
            )
        ).scalar_one()
        consumed = conn.execute(
            select(amount_reservations.c.consumed_claim_id).where(
                amount_reservations.c.insurer_id == world.insurer.id
            )
        ).scalars()
        by = sorted(-1 if c is None else int(c) for c in consumed)
        return int(received), int(postings), [None if c == -1 else c for c in by]


@pytest.mark.parametrize(("point", "wanted"), [("in-transaction", 2), ("between-claims", 1)])
def test_a_killed_adjudication_of_engaged_invoices_ends_as_an_uninterrupted_one(
    world: World, tmp_path: Path, point: str, wanted: int
) -> None:
    platform, principal = world.platform, world.principal
    # Given calculations that engaged amounts for three people, whose rights then ended
    engaged = []
    for person in PEOPLE:
        lines = devices(12_000, 12_000)
        engaged.append((person, lines, calc(world, person, lines)))
    _end_rights(world, tmp_path)
    # and the invoices carrying their numbers
    claim_ids = []
    for person, lines, result in engaged:
        content = ClaimContent(
            f"CRASH-{person}", TODAY, invoice_of(result, TODAY, lines),
            engagement_number=result.engagement_number,
        )  # fmt: skip
        card = world.people[person].card
        claim_ids.append(submit_claim(platform, principal, ClaimSubmission(card, content)).claim_id)
    assert _counts(world, claim_ids) == (3, 0, [None, None, None])
    # When the adjudication is killed at the point, then run again
    settings = platform.settings
    env = {
        **os.environ,
        "TIERSPAYANT_DATA_DIR": str(settings.data_dir),
        "TIERSPAYANT_DATABASE_URL": settings.database_url,
    }
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, point, str(wanted), str(marker), NOW.isoformat(),
         world.insurer.amc_number],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    kill_when_marked(child, marker, f"{point}:{wanted}")
    # the killed transaction left nothing: only the claims committed before are judged
    committed = wanted - 1 if point == "in-transaction" else wanted
    received, postings, _ = _counts(world, claim_ids)
    assert (received, postings) == (3 - committed, committed)
    adjudicate_pending(platform, insurer_amc=world.insurer.amc_number)
    # Then every line is paid what its engagement promised, as without the crash
    for claim_id, (_, _, result) in zip(claim_ids, engaged, strict=True):
        view = get_claim(platform, principal, claim_id)
        assert [ln.amc_accepted_cents for ln in view.lines] == [ln.amc_cents for ln in result.lines]
        assert [ln.reason_code for ln in view.lines] == [None, None]
    # one engagement posting per claim, each reservation consumed by its own claim, once
    assert _counts(world, claim_ids) == (0, 3, sorted(claim_ids))
    assert provider_engagements(platform, principal) == []
    report = check_ledger(platform)
    assert report.problems == ()
    assert report.differences == ()
