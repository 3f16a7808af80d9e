"""Identification does the same work for an unknown person as for a known one.

Given a world of enrolled members on SQLite and PostgreSQL, when the service identifies a
known card, the same card with a wrong birth date, and a valid NIR nobody holds, then each
runs the same number of SQL statements, decryptions, blind-index HMACs, canary marks and
checks, and audit pseudonyms. (The time it takes is measured by
``bench/bench_identification.py``, not asserted here.)
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from tests.api.world import ENGINE_PARAMS, World, build_world, close_world
from tests.factories import make_nir
from tierspayant.security import crypto
from tierspayant.security.identity import nir_index
from tierspayant.services import canaries, identification
from tierspayant.services.identification import CardData, identify_detailed
from tierspayant.services.insurers import cached_insurer
from tierspayant.store import beneficiaries, beneficiary_reads, tables
from tierspayant.store.keys import insurer_scope


@pytest.fixture(scope="module", params=ENGINE_PARAMS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    built = build_world(str(request.param), request, tmp_path_factory, count=40)
    try:
        yield built
    finally:
        close_world(built)


def _spy(
    monkeypatch: pytest.MonkeyPatch, counts: Counter[str], owner: Any, name: str, label: str
) -> None:
    real: Callable[..., Any] = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[label] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)


def _work(
    world: World, card: CardData, monkeypatch: pytest.MonkeyPatch
) -> tuple[Counter[str], bool]:
    counts: Counter[str] = Counter()
    with monkeypatch.context() as patch:
        _spy(patch, counts, crypto.FieldCipher, "decrypt", "decrypt")
        _spy(patch, counts, crypto.BlindIndexer, "index", "blind_index")
        _spy(patch, counts, identification, "is_canary", "canary_check")
        _spy(patch, counts, canaries, "canary_mark", "canary_mark")
        _spy(patch, counts, identification, "subject_pseudonym", "pseudonym")
        # The index read runs on the driver (no SQLAlchemy event): counted as a call.
        _spy(patch, counts, identification, "find_by_nir_index_padded", "index_read")

        def statement(*_args: Any) -> None:
            counts["statements"] += 1

        engine = world.platform.engine
        event.listen(engine, "before_cursor_execute", statement)
        try:
            with engine.connect() as conn:
                found = identify_detailed(world.platform, conn, card).found is not None
        finally:
            event.remove(engine, "before_cursor_execute", statement)
    return counts, found


def test_unknown_wrong_birth_date_and_known_do_the_same_work(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a known person, the same card with a wrong birth date, and a NIR nobody holds
    person = next(iter(world.people.values()))[5]
    known = person.card_data()
    wrong = replace(known, birth_date=known.birth_date - timedelta(days=1))
    unknown = replace(known, nir=make_nir(random.Random(11), year=1971, month=6))
    with world.platform.engine.connect() as conn:  # warm the caches (insurer, keys, marks)
        for card in (known, wrong, unknown):
            identify_detailed(world.platform, conn, card)
    # When each is identified
    work = {
        name: _work(world, card, monkeypatch)
        for name, card in (("known", known), ("wrong", wrong), ("unknown", unknown))
    }
    # Then only the known one is found
    assert {name: found for name, (_, found) in work.items()} == {
        "known": True,
        "wrong": False,
        "unknown": False,
    }
    # And all three did the same work, step for step
    reference = work["known"][0]
    assert (reference["decrypt"], reference["canary_check"], reference["pseudonym"]) == (1, 1, 1)
    assert reference["index_read"] == 1
    for name in ("wrong", "unknown"):
        assert work[name][0] == reference, name


def test_the_driver_read_answers_what_the_store_read_answers(world: World) -> None:
    # Given a known person's index and an index nobody has, on each insurer
    person = next(iter(world.people.values()))[3]
    with world.platform.engine.connect() as conn:
        insurer = cached_insurer(world.platform, conn, person.amc_number)
        keys = world.platform.keys.active(conn, insurer_scope(insurer.amc_number))
        index = nir_index(crypto.BlindIndexer(keys), person.nir, person.birth_rank)
        for probe in (index, bytes(16)):
            # When both reads run, Then they give the same record and the same verdict
            by_driver = beneficiary_reads.find_by_nir_index_padded(conn, insurer.id, probe)
            by_store = beneficiaries.find_by_nir_index_padded(conn, insurer.id, probe)
            assert by_driver == by_store
            assert by_driver[0] is not None
        assert by_driver[1] is False  # the unknown index: the pad row, not a match


def test_a_lookups_reads_answer_what_a_connection_answers_and_see_later_commits(
    world: World,
) -> None:
    # Given a known person's index, read once through a lookup's lazy reads (on SQLite the
    # thread's own driver connection, kept between lookups)
    platform = world.platform
    person = next(iter(world.people.values()))[5]
    with platform.engine.connect() as conn:
        insurer = cached_insurer(platform, conn, person.amc_number)
        keys = platform.keys.active(conn, insurer_scope(insurer.amc_number))
        index = nir_index(crypto.BlindIndexer(keys), person.nir, person.birth_rank)
        expected = beneficiaries.find_by_nir_index_padded(conn, insurer.id, index)
    with beneficiary_reads.LookupReads(platform.engine) as reads:
        assert beneficiary_reads.find_by_nir_index_padded(reads, insurer.id, index) == expected
    # When the row changes and the change is committed
    table = tables.beneficiaries
    with platform.engine.begin() as conn:
        conn.execute(
            table.update()
            .where(table.c.insurer_id == insurer.id, table.c.idx_nir == index)
            .values(contract_code="CHANGED")
        )
    try:
        # Then the next lookup's read sees it (no snapshot kept between lookups)
        with beneficiary_reads.LookupReads(platform.engine) as reads:
            found, matched = beneficiary_reads.find_by_nir_index_padded(reads, insurer.id, index)
            assert matched
            assert found is not None
            assert found.contract_code == "CHANGED"
            # And any other use checks a pooled connection out, returned at the end
            assert reads.execute(select(1)).scalar_one() == 1
    finally:
        with platform.engine.begin() as conn:
            conn.execute(
                table.update()
                .where(table.c.insurer_id == insurer.id, table.c.idx_nir == index)
                .values(contract_code=expected[0].contract_code)  # type: ignore[union-attr]
            )


def test_a_failed_driver_read_is_not_retried_on_the_same_connection(world: World) -> None:
    platform = world.platform
    if platform.engine.dialect.name != "sqlite":
        pytest.skip("the thread's own driver connection is SQLite's")
    with beneficiary_reads.LookupReads(platform.engine) as reads:
        broken = reads.driver()
    broken.close()  # Given the thread's connection broke
    # When a lookup reads, Then it fails once, and the next lookup reads on a new one
    with (
        pytest.raises(Exception, match="closed"),
        beneficiary_reads.LookupReads(platform.engine) as reads,
    ):
        beneficiary_reads.find_by_nir_index_padded(reads, 1, bytes(16))
    with beneficiary_reads.LookupReads(platform.engine) as reads:
        assert reads.driver() is not broken
        beneficiary_reads.find_by_nir_index_padded(reads, 1, bytes(16))
