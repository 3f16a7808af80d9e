"""Insurer portal: a full import that would end many coverages asks for a confirmation."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select

from tests.web.portal_client import PortalClient
from tests.web.world import World
from tierspayant.store.tables import beneficiaries


def _covered(world: World) -> int:
    today = world.platform.today()
    with world.platform.engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(beneficiaries)
                .where(
                    or_(
                        beneficiaries.c.coverage_end.is_(None),
                        beneficiaries.c.coverage_end >= today,
                    )
                )
            ).scalar_one()
        )


def test_a_full_file_ending_many_coverages_is_confirmed_with_its_count(world: World) -> None:
    # Given the world's 12 beneficiaries, and their full file without the last three
    lines = (world.platform.settings.data_dir / "beneficiaires.csv").read_bytes().splitlines()
    body = b"\n".join(lines[:-3]) + b"\n"
    covered = _covered(world)
    assert covered == 12
    client = PortalClient(world)
    client.login("staff")
    client.get("/portail/assureur/import")
    form = {"mode": "full", "file_date": world.platform.today().isoformat()}

    def upload(**extra: str) -> str:
        response = client.post(
            "/portail/assureur/import",
            {**form, **extra},
            files={"file": ("population.csv", body, "text/csv")},
        )
        assert response.status_code in (200, 409), response.text
        return response.text

    # When uploaded: refused in French with the count, nothing applied, and a
    # confirmation step that keeps the mode and the date
    page = upload()
    assert "mettrait fin à la couverture de 3 bénéficiaires sur 12" in page
    assert "Rien n&#39;a été appliqué" in page
    assert re.search(r'name="confirm_terminations" value="3" required', page)
    assert re.search(r'value="full" checked', page)
    assert _covered(world) == 12
    # When confirmed with another count: refused again
    assert "et non de 2" in upload(confirm_terminations="2")
    assert _covered(world) == 12
    # When confirmed with the count shown: applied
    done = upload(confirm_terminations="3")
    assert "Résultat de l" in done
    assert re.search(r"Radiés</th><td>3<", done)
    assert _covered(world) == 9
