"""An insurer taken over mid-year: its members' consumed ceilings and last equipment dates,
imported from the takeover file (docs/formats/takeover.md), make the first calculation and
the first adjudication right. All or nothing, idempotent, audited without identities.
SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from tests.api.world import RELAXED_GUARD
from tests.conftest import SeededInsurer
from tests.integration.claims_world import World, build_world
from tests.integration.test_counter_binds import (
    TODAY,
    at_the_counter_then_invoiced,
    crown,
    facts_catalogue,
    frame,
    invoice_of,
)
from tierspayant.app.platform import Platform, initialise
from tierspayant.cli.main import app
from tierspayant.config import load_settings
from tierspayant.domain.claims import ClaimContent
from tierspayant.domain.facts import CounterUse
from tierspayant.services.adjudication import adjudicate_pending
from tierspayant.services.claims import ClaimSubmission, get_claim, submit_claim
from tierspayant.services.identification import identify
from tierspayant.services.pricing import Calculation, calculate
from tierspayant.services.takeover import TakeoverRefused, import_takeover
from tierspayant.store.adjudication import counter_history
from tierspayant.store.claims_tables import benefit_counters, prior_authorisations
from tierspayant.store.tables import audit_events


@pytest.fixture
def platform(
    engine_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Platform]:
    """The platform of test_counter_binds: a relaxed guard (one principal looks many
    people up)."""
    if engine_name == "sqlite":
        data_dir = tmp_path / "data"
        url = f"sqlite:///{data_dir / 'tierspayant.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
        data_dir = request.getfixturevalue("postgres_data_dir")
    env = {
        "TIERSPAYANT_DATA_DIR": str(data_dir),
        "TIERSPAYANT_DATABASE_URL": url,
        "TIERSPAYANT_GUARD_POLICY": json.dumps(RELAXED_GUARD),
    }
    built = initialise(load_settings(env))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def world(platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path) -> World:
    """Twelve people under BASE (a 500 € annual dental ceiling, glasses every 24 months)."""
    return build_world(platform, seed_insurer, tmp_path, people=12, catalogue_of=facts_catalogue)


HEADER = "record;nir;birth_rank;key;date;amount_cents;units"
ACTOR = "operator:test"
_files = itertools.count()


def write(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / f"takeover-{next(_files)}.csv"
    path.write_text("\n".join((header, *lines)) + "\n", encoding="utf-8")
    return path


def nir_of(world: World, n: int) -> str:
    nir = world.people[n].card.nir
    assert nir is not None
    return nir


def beneficiary_id(world: World, n: int) -> int:
    with world.platform.engine.connect() as conn:
        _, found = identify(world.platform, conn, world.people[n].card)
    assert found is not None
    return found.record.id


def all_counters(world: World) -> list[tuple[object, ...]]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(benefit_counters).where(benefit_counters.c.insurer_id == world.insurer.id)
        ).all()
    return sorted(tuple(r) for r in rows)


def takeover_events(world: World) -> list[tuple[str, dict[str, object]]]:
    with world.platform.engine.connect() as conn:
        rows = conn.execute(
            select(audit_events.c.decision, audit_events.c.detail)
            .where(
                audit_events.c.action == "takeover.import",
                audit_events.c.insurer == world.insurer.amc_number,
            )
            .order_by(audit_events.c.seq)
        ).all()
    return [(r.decision, json.loads(r.detail)) for r in rows]


def test_450_of_a_500_dental_ceiling_imported_leaves_50_to_calculate_and_to_accept(
    world: World, tmp_path: Path
) -> None:
    # Given the former insurer's file: 450 € of the 500 € annual dental ceiling consumed
    # in March
    path = write(tmp_path, f"counter;{nir_of(world, 0)};1;dental;2026-03-02;45000;1")
    summary = import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    assert (summary.lines, summary.beneficiaries, summary.changed) == (1, 1, 1)
    # When a crown billed 800 € is calculated then invoiced, its first time on the platform
    result, accepted = at_the_counter_then_invoiced(
        world, world.people[0], TODAY, (crown("HBLD040", 80_000),)
    )
    # Then the calculation quotes 50 € and adjudication accepts 50 €
    assert result.amc_cents == 5_000
    assert accepted == [5_000]
    # while someone without imported consumption gets the 500 € ceiling whole
    other, _ = at_the_counter_then_invoiced(
        world, world.people[1], TODAY, (crown("HBLD041", 80_000),)
    )
    assert other.amc_cents == 50_000


def test_glasses_bought_six_months_ago_block_a_renewal_inside_the_period(
    world: World, tmp_path: Path
) -> None:
    bought = TODAY - timedelta(days=182)
    path = write(tmp_path, f"equipment;{nir_of(world, 0)};1;glasses;{bought.isoformat()};;")
    import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    renewed, accepted = at_the_counter_then_invoiced(
        world, world.people[0], TODAY, (frame("F10", 15_000),)
    )
    first, _ = at_the_counter_then_invoiced(world, world.people[1], TODAY, (frame("F11", 15_000),))
    # The 60 € forfait is not due again within 24 months: only the ticket modérateur is
    assert renewed.amc_cents < first.amc_cents
    assert any("renewal" in rule for rule in renewed.lines[0].rules), renewed.lines[0].rules
    assert accepted == [renewed.amc_cents]


def test_the_same_file_twice_changes_nothing_and_a_new_file_replaces_the_rows(
    world: World, tmp_path: Path
) -> None:
    lines = (
        f"counter;{nir_of(world, 0)};1;dental;2026-03-02;45000;1",
        f"counter;{nir_of(world, 0)};1;devices;2026-02-10;12000;2",
        f"equipment;{nir_of(world, 2)};1;glasses;2025-09-01;0;1",
    )
    path = write(tmp_path, *lines)
    first = import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    after_first = all_counters(world)
    again = import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    assert (first.changed, again.changed) == (2, 0)
    assert all_counters(world) == after_first
    # A corrected file for person 0 replaces their rows and leaves person 2's alone
    fixed = write(tmp_path, f"counter;{nir_of(world, 0)};1;dental;2026-03-02;40000;1")
    assert import_takeover(world.platform, world.insurer.amc_number, fixed, ACTOR).changed == 1
    with world.platform.engine.connect() as conn:
        history = counter_history(
            conn, world.insurer.id, [beneficiary_id(world, 0), beneficiary_id(world, 2)]
        )
    assert history[beneficiary_id(world, 0)] == [CounterUse("dental", date(2026, 3, 2), 40000, 1)]
    assert history[beneficiary_id(world, 2)] == [
        CounterUse("renewal.glasses", date(2025, 9, 1), 0, 1)
    ]
    # Every run is audited, with counts and the digest, never an identity
    events = takeover_events(world)
    assert [(d, e["changed"]) for d, e in events] == [("allow", 2), ("allow", 0), ("allow", 1)]
    assert not any(nir_of(world, 0) in json.dumps(e) for _, e in events)


def test_bad_lines_are_refused_with_their_codes_and_nothing_is_imported(
    world: World, tmp_path: Path
) -> None:
    nir = nir_of(world, 0)
    stranger_nir = nir_of(world, 1)
    wrong_key = f"{nir[:-2]}{(int(nir[-2:]) + 1) % 97 or 97:02d}"
    path = write(
        tmp_path,
        f"counter;{nir};1;dental;2026-03-02;45000;1",  # 2: good
        f"credit;{nir};1;dental;2026-03-02;100;1",  # 3: unknown record type
        f"counter;{wrong_key};1;dental;2026-03-02;100;1",  # 4: NIR key wrong
        f"counter;{nir};1;dental;2026-13-02;100;1",  # 5: bad date
        f"counter;{nir};1;dental;2026-03-03;12.50;1",  # 6: amount not in cents
        f"counter;{nir};1;dental;2026-03-04;-100;1",  # 7: negative amount
        f"counter;{nir};1;optique;2026-03-02;100;1",  # 8: no such ceiling in BASE
        f"counter;{nir};1;dental;2026-03-02;500;1",  # 9: same key and date as line 2
        f"counter;{stranger_nir};2;dental;2026-03-02;100;1",  # 10: nobody with rank 2
        f'counter;"{nir};1;dental;2026-03-02;100;1',  # 11: quote left open
        f"counter;{nir};1;dental;2026-03-02",  # 12: columns missing
        f"counter;{nir};1;dental;{(TODAY + timedelta(days=400)).isoformat()};100;1",  # 13
        f"equipment;{nir};1;glasses;2026-03-02;6000;1",  # 14: equipment with an amount
        f"counter;{nir};1;dental;2026-03-05;100;1000",  # 15: too many units
    )
    before = all_counters(world)
    with pytest.raises(TakeoverRefused) as refused:
        import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    got = [(e.line_no, e.code, e.column) for e in refused.value.errors]
    assert got == [
        (3, "line.kind", "record"),
        (4, "line.nir.key", "nir"),
        (5, "line.date", "date"),
        (6, "line.amount", "amount_cents"),
        (7, "line.amount", "amount_cents"),
        (8, "line.counter", "key"),
        (9, "line.duplicate", "key"),
        (10, "line.unknown_beneficiary", "nir"),
        (11, "line.quote", None),
        (12, "line.columns", None),
        (13, "line.date", "date"),
        (14, "line.amount", "amount_cents"),
        (15, "line.units", "units"),
    ]
    assert refused.value.code == "takeover.refused"
    # The value is given for each column, masked for the identity ones
    values = {e.line_no: e.value for e in refused.value.errors}
    assert (values[5], values[6], values[8]) == ("2026-13-02", "12.50", "optique")
    assert values[4] == "•" * 15
    assert all(nir not in f"{e.message}{e.value}" for e in refused.value.errors)
    # Nothing was written, the good line neither; the refusal is audited
    assert all_counters(world) == before
    assert takeover_events(world) == [
        ("deny", {"file_digest": takeover_events(world)[0][1]["file_digest"], "lines": 14,
                  "refused": 13}),
    ]  # fmt: skip


def test_a_beneficiary_designated_by_member_number_and_birth_date(
    world: World, tmp_path: Path
) -> None:
    # Given lines without NIR: member number (any case) with birth date and rank
    birth = world.people[4].birth.isoformat()
    path = write(
        tmp_path,
        f"counter;;1;devices;2026-02-10;12000;2;m0000004;{birth}",
        f"counter;;1;devices;2026-02-11;100;1;M0000005;{birth}",  # 3: not person 5's birth
        header=f"{HEADER};member_number;birth_date",
    )
    with pytest.raises(TakeoverRefused) as refused:
        import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    assert [(e.line_no, e.code, e.column) for e in refused.value.errors] == [
        (3, "line.unknown_beneficiary", "member_number")
    ]
    path = write(
        tmp_path,
        f"counter;;1;devices;2026-02-10;12000;2;m0000004;{birth}",
        header=f"{HEADER};member_number;birth_date",
    )
    import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    with world.platform.engine.connect() as conn:
        history = counter_history(conn, world.insurer.id, [beneficiary_id(world, 4)])
    assert history[beneficiary_id(world, 4)] == [CounterUse("devices", date(2026, 2, 10), 12000, 2)]


AGREEMENT_HEADER = f"{HEADER};agreement;provider;valid_until"


def invoiced(world: World, n: int, invoice: str, agreement: str | None) -> tuple[int, str]:
    """A crown billed 522 € (the contract pays 450 €) invoiced today under ``agreement``:
    the AMC amount accepted and the line's reason code."""
    lines = (crown(f"HB{invoice}", 52_200),)
    person = world.people[n]
    result = calculate(world.platform, world.principal, Calculation(person.card, TODAY, lines))
    assert result.amc_cents == 45_000
    content = ClaimContent(
        invoice, TODAY, invoice_of(result, TODAY, lines), agreement,
        engagement_number=result.engagement_number,
    )  # fmt: skip
    receipt = submit_claim(world.platform, world.principal, ClaimSubmission(person.card, content))
    adjudicate_pending(world.platform, insurer_amc=world.insurer.amc_number)
    view = get_claim(world.platform, world.principal, receipt.claim_id)
    return view.lines[0].amc_accepted_cents, str(view.lines[0].reason_code)


def test_an_imported_open_agreement_is_honoured_by_an_invoice(world: World, tmp_path: Path) -> None:
    # Given an open agreement of the former insurer: 300 € guaranteed for a crown at this
    # dentist, valid 40 more days
    am = world.provider.am_number
    until = (TODAY + timedelta(days=40)).isoformat()
    quoted = (TODAY - timedelta(days=20)).isoformat()
    number = f"ANC-{world.insurer.amc_number}-42"  # agreement numbers are platform-wide
    line = (
        f"agreement;{nir_of(world, 0)};1;dental_prosthesis;{quoted};30000;1;{number};{am};{until}"
    )
    path = write(tmp_path, line, header=AGREEMENT_HEADER)
    summary = import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    assert summary.agreements == 1
    # The same file again records nothing more
    assert import_takeover(world.platform, world.insurer.amc_number, path, ACTOR).agreements == 0
    with world.platform.engine.connect() as conn:
        stored = conn.execute(
            select(prior_authorisations.c.status, prior_authorisations.c.guaranteed_cents).where(
                prior_authorisations.c.agreement_number == number
            )
        ).all()
    assert [tuple(r) for r in stored] == [("granted", 30_000)]
    # When the dentist invoices a crown under that number: accepted up to the 300 €
    # guaranteed (the contract alone would pay 450 €)
    accepted, _ = invoiced(world, 0, "TK-1", number)
    assert accepted == 30_000
    # while without an agreement, or under a number never imported, nothing is paid
    assert invoiced(world, 1, "TK-2", None)[0] == 0
    assert invoiced(world, 2, "TK-3", number + "X") == (0, "prior_auth.not_found")


def test_agreement_lines_are_checked(world: World, tmp_path: Path) -> None:
    am = world.provider.am_number
    nir = nir_of(world, 0)
    until = (TODAY + timedelta(days=40)).isoformat()
    a = f"A{world.insurer.amc_number}-"  # agreement numbers are platform-wide
    first = write(
        tmp_path,
        f"agreement;{nir};1;dental_prosthesis;2026-11-01;30000;1;{a}7;{am};{until}",
        header=AGREEMENT_HEADER,
    )
    import_takeover(world.platform, world.insurer.amc_number, first, ACTOR)
    path = write(
        tmp_path,
        f"agreement;{nir};1;dental_prosthesis;2026-11-01;35000;1;{a}7;{am};{until}",  # 2
        f"agreement;{nir};1;dental_prosthesis;2026-11-01;30000;1;{a}8;999999999;{until}",  # 3
        f"agreement;{nir};1;dental_prosthesis;2026-11-01;30000;1;{a}9;{am};2026-11-20",  # 4
        f"agreement;{nir};1;optics_frame;2026-11-01;30000;1;{a}10;{am};{until}",  # 5
        f"agreement;{nir};1;dental_prosthesis;2026-11-01;30000;1;AN C;{am};{until}",  # 6
        f"agreement;{nir};1;dental_prosthesis;2026-11-01;0;1;{a}11;{am};{until}",  # 7
        f"agreement;{nir};1;dental_prosthesis;2026-11-01;100;1;{a}12;{am};{until}",  # 8
        f"agreement;{nir};1;dental_prosthesis;2026-11-02;100;1;{a}12;{am};{until}",  # 9
        header=AGREEMENT_HEADER,
    )
    with pytest.raises(TakeoverRefused) as refused:
        import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    assert [(e.line_no, e.code, e.column) for e in refused.value.errors] == [
        (2, "line.agreement", "agreement"),  # already imported with another amount
        (3, "line.provider", "provider"),  # no such professional
        (4, "line.date", "valid_until"),  # no longer open
        (6, "line.agreement", "agreement"),  # malformed number
        (7, "line.amount", "amount_cents"),  # nothing guaranteed
        (9, "line.duplicate", "agreement"),  # the number of line 8
    ]  # line 5 is valid: optics frames take agreements too


# A random valid file: per person, counters (dental, devices) and equipment (glasses) on
# distinct dates of the last two years.
_row = st.tuples(
    st.integers(0, 11),  # the person
    st.sampled_from(("dental", "devices", "glasses")),
    st.integers(1, 700),  # days before TODAY
    st.integers(1, 60_000),  # cents
    st.integers(0, 5),  # units
)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(_row, max_size=25, unique_by=lambda r: (r[0], r[1], r[2])))
def test_any_valid_file_reads_back_as_the_counters_it_gives(
    world: World,
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, str, int, int, int]],
) -> None:
    ids = [beneficiary_id(world, n) for n in range(12)]
    with world.platform.engine.connect() as conn:
        before = counter_history(conn, world.insurer.id, ids)
    lines = []
    expected: dict[int, list[CounterUse]] = {}
    for person, key, days, cents, units in rows:
        day = TODAY - timedelta(days=days)
        if key == "glasses":
            lines.append(f"equipment;{nir_of(world, person)};1;glasses;{day.isoformat()};;")
            use = CounterUse("renewal.glasses", day, 0, 1)
        else:
            lines.append(
                f"counter;{nir_of(world, person)};1;{key};{day.isoformat()};{cents};{units}"
            )
            use = CounterUse(key, day, cents, units)
        expected.setdefault(ids[person], []).append(use)
    path = write(tmp_path_factory.mktemp("takeover"), *lines)
    summary = import_takeover(world.platform, world.insurer.amc_number, path, ACTOR)
    assert (summary.lines, summary.beneficiaries) == (len(rows), len(expected))
    with world.platform.engine.connect() as conn:
        after = counter_history(conn, world.insurer.id, ids)
    order = lambda u: (u.care_date, u.key)  # noqa: E731 - the history's order
    for b in ids:
        # Each person the file names has exactly the file's rows; the others, what they had
        wanted = sorted(expected[b], key=order) if b in expected else before[b]
        assert sorted(after[b], key=order) == sorted(wanted, key=order)
    # and the same file again changes nothing
    assert import_takeover(world.platform, world.insurer.amc_number, path, ACTOR).changed == 0


def test_the_takeover_command(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_ = world.platform.settings
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(settings_.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", settings_.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, ["import", "takeover", *args])
        return result.exit_code, result.output

    amc = world.insurer.amc_number
    good = write(tmp_path, f"counter;{nir_of(world, 0)};1;dental;2026-03-02;45000;1")
    code, out = run(str(good), "--insurer", amc)
    assert code == 0, out
    assert "bénéficiaires" in out
    code, out = run(str(good), "--insurer", amc)
    assert code == 0
    assert "déjà importé" in out
    bad = write(tmp_path, f"counter;{nir_of(world, 0)};1;dental;2026-03-02;45,00;1")
    report = tmp_path / "errors.csv"
    code, out = run(str(bad), "--insurer", amc, "--errors", str(report))
    assert code == 2
    assert "ligne 2 : [line.amount]" in out
    assert "[takeover.refused]" in out
    assert report.read_text(encoding="utf-8").splitlines()[1].startswith("2;line.amount;")
    assert run(str(good), "--insurer", "999999999")[0] == 3
    assert run(str(tmp_path / "absent.csv"), "--insurer", amc)[0] == 2
    unknown_column = write(tmp_path, header="record;nir;rang")
    code, out = run(str(unknown_column), "--insurer", amc)
    assert code == 2
    assert "[file.header.unknown_column]" in out
    assert nir_of(world, 0) not in out
