"""The subject index: pseudonyms of the people read back to ids, without a pass."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, delete, func, select
from typer.testing import CliRunner

from tests.integration.operations_support import NOW, SeedInsurer, enrol
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.jobs.scheduler import Scheduler
from tierspayant.security.audit import subject_pseudonym
from tierspayant.services.incident import measures, subjects
from tierspayant.services.insurers import get_insurer
from tierspayant.store.incident_tables import STATUS_ACTIONS, subject_index, subject_index_marks
from tierspayant.store.tables import beneficiaries


def test_the_batch_pseudonyms_are_the_logs_pseudonyms() -> None:
    key = bytes(range(32))
    ids = [1, 9, 10, 123_456_789]
    assert list(subjects.pseudonyms(key, "77665544", ids)) == [
        subject_pseudonym(key, "77665544", str(i)) for i in ids
    ]


def test_a_short_pseudonym_key_is_refused() -> None:
    with pytest.raises(ValueError, match="256 bits"):
        list(subjects.pseudonyms(b"short", "77665544", [1]))


def _copy_row(conn: Connection, insurer_id: int, source: int, new_id: int) -> None:
    row = conn.execute(
        select(beneficiaries).where(
            beneficiaries.c.insurer_id == insurer_id, beneficiaries.c.id == source
        )
    ).one()
    values = dict(row._mapping)
    values.update(id=new_id, idx_nir=bytes(16), idx_member=bytes(16), idx_family=bytes(16))
    conn.execute(beneficiaries.insert().values(**values))


def test_given_new_and_purged_people_when_resolving_then_only_held_ones_and_only_new_ids_hashed(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    platform.clock = lambda: NOW
    seeded, _ = enrol(platform, seed_insurer, tmp_path, 12)
    keys = subjects.SubjectKeys.of(platform)

    def names(*ids: int) -> list[str]:
        return list(subjects.pseudonyms(keys.pseudonym, seeded.amc_number, ids))

    with platform.engine.begin() as conn:
        insurer = get_insurer(conn, seeded.amc_number)
        assert subjects.catch_up(conn, keys, insurer, NOW) == 12
        assert subjects.catch_up(conn, keys, insurer, NOW) == 0
        _copy_row(conn, insurer.id, 1, 13)
        conn.execute(
            delete(beneficiaries).where(
                beneficiaries.c.insurer_id == insurer.id, beneficiaries.c.id == 5
            )
        )
        # The new id is indexed by the next resolve, and only it.
        found = subjects.resolve(conn, keys, insurer, names(3, 5, 13, 99), NOW)
        assert found == dict(zip(names(3, 13), (3, 13), strict=True))
        count = conn.execute(
            select(func.count())
            .select_from(subject_index)
            .where(subject_index.c.insurer_id == insurer.id)
        ).scalar_one()
        assert count == 13  # 1–13: the purged id 5 stays indexed, 99 was never issued
        mark = conn.execute(
            select(subject_index_marks.c.up_to_id).where(
                subject_index_marks.c.insurer_id == insurer.id
            )
        ).scalar_one()
        assert mark == 13
        # Another insurer's pseudonym of the same id is not this insurer's person.
        other = list(subjects.pseudonyms(keys.pseudonym, "11111111", [3]))
        assert subjects.resolve(conn, keys, insurer, other, NOW) == {}


def test_the_index_holds_no_pseudonym_in_clear(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    platform.clock = lambda: NOW
    seeded, _ = enrol(platform, seed_insurer, tmp_path, 3)
    assert subjects.index_subjects(platform)[seeded.amc_number] == 3
    assert subjects.index_subjects(platform)[seeded.amc_number] == 0
    keys = subjects.SubjectKeys.of(platform)
    clear = {
        bytes.fromhex(p) for p in subjects.pseudonyms(keys.pseudonym, seeded.amc_number, [1, 2, 3])
    }
    with platform.engine.connect() as conn:
        insurer = get_insurer(conn, seeded.amc_number)
        query = select(subject_index.c.lookup).where(subject_index.c.insurer_id == insurer.id)
        stored = {bytes(v) for v in conn.execute(query).scalars()}
    assert len(stored) == 3
    assert not stored & clear


def test_the_status_index_covers_exactly_the_measures_actions() -> None:
    # The measures' query can use the partial index only if it names no other action.
    assert set(measures.STATUS_ACTIONS) == set(STATUS_ACTIONS)


def _indexed(platform: Platform, insurer_id: int) -> tuple[int | None, int, int]:
    """The insurer's mark, how many of its ids the index holds, and its highest id."""
    with platform.engine.connect() as conn:
        mark = conn.execute(
            select(subject_index_marks.c.up_to_id).where(
                subject_index_marks.c.insurer_id == insurer_id
            )
        ).scalar_one_or_none()
        held = conn.execute(
            select(func.count())
            .select_from(subject_index)
            .where(subject_index.c.insurer_id == insurer_id)
        ).scalar_one()
        top = conn.execute(
            select(func.max(beneficiaries.c.id)).where(beneficiaries.c.insurer_id == insurer_id)
        ).scalar_one()
    return mark, int(held), int(top)


def test_the_nightly_job_indexes_the_people_enrolled_since_the_night_before(
    platform: Platform, seed_insurer: SeedInsurer, tmp_path: Path
) -> None:
    platform.clock = lambda: NOW
    seeded, _ = enrol(platform, seed_insurer, tmp_path, 9)
    assert _indexed(platform, seeded.id)[:2] == (None, 0)
    night = datetime.combine(NOW.date() + timedelta(days=1), time(3, 0), tzinfo=UTC)
    platform.clock = lambda: night
    ran = Scheduler(platform, checkpoint_dir=tmp_path / "cp").tick()
    assert f"subject_index:{night.date().isoformat()}" in ran.ran
    mark, held, top = _indexed(platform, seeded.id)
    assert (mark, held) == (top, 9)


def test_the_index_command_catches_up_by_hand(
    platform: Platform,
    seed_insurer: SeedInsurer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.clock = lambda: NOW
    seeded, _ = enrol(platform, seed_insurer, tmp_path, 7)
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    first = runner.invoke(app, ["incident", "indexer"])
    assert first.exit_code == 0, first.output
    assert "bénéficiaire(s) indexé(s) pour" in first.output
    mark, held, top = _indexed(platform, seeded.id)
    assert (mark, held) == (top, 7)
    again = runner.invoke(app, ["incident", "indexer"])
    assert again.exit_code == 0, again.output
    assert again.output.startswith("0 bénéficiaire(s) indexé(s)")
