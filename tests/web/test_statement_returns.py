"""The insurer's statements page marks a fund call its bank returned, with the reason."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tests.pain002_support import Tx, status_report
from tests.web.portal_client import PortalClient
from tests.web.world import AMC, World
from tierspayant.domain.payments import end_to_end_id
from tierspayant.services import billing
from tierspayant.store.ledger_tables import billing_statements


def _statement(world: World, period: str, due: int, collection: date) -> None:
    with world.platform.engine.begin() as conn:
        conn.execute(
            billing_statements.insert().values(
                insurer_id=world.insurer_id,
                period=period,
                run_key=f"bill:{period}",
                lines=2,
                paid_cents=due,
                undue_cents=0,
                due_cents=due,
                collection_date=collection,
                created_at=datetime(2026, 10, 2, tzinfo=UTC),
            )
        )


def test_a_returned_fund_call_is_shown_on_the_statements_page(world: World) -> None:
    # Given two statements, the later fund call rejected by the insurer's bank
    _statement(world, "2026-08", 4_200, date(2026, 9, 10))
    _statement(world, "2026-09", 12_345, date(2026, 10, 10))
    returned = end_to_end_id(date(2026, 10, 10), f"{AMC}-2026-09")
    summary = billing.record_returns(
        world.platform, status_report([Tx(returned, reason="MD01")]), actor="test"
    )
    assert summary.ok
    assert [r.period for r in summary.recorded] == ["2026-09"]

    # When staff open their statements
    staff = PortalClient(world)
    staff.login("staff")
    page = staff.get("/portail/assureur/releves")

    # Then the returned one, and only it, says so with its reason
    assert page.status_code == 200
    assert page.text.count("Prélèvement rejeté") == 1
    assert "(motif MD01)" in page.text
    september = page.text.index("<td>2026-09</td>")
    august = page.text.index("<td>2026-08</td>")
    assert september < page.text.index("Prélèvement rejeté") < august
