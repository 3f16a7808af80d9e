"""Bank details changes are guarded: an attacker with a phished provider login asks for
a new IBAN and no transfer ever goes to it; a change applies only once someone else
verified it and the cooling-off period passed."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import SeededInsurer
from tests.factories import make_french_iban
from tests.money_support import ACCEPTED, adjudicated_claim, make_provider
from tierspayant.app.platform import Platform
from tierspayant.cli.main import app
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import bank_details, payments
from tierspayant.services.errors import Conflict, Forbidden, ServiceError
from tierspayant.services.providers import Provider
from tierspayant.store.security_tables import security_alerts
from tierspayant.store.tables import audit_events


def at(day: date, hour: int = 9) -> Callable[[], datetime]:
    return lambda: datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def provider_login(provider: Provider) -> Principal:
    """The provider's portal login (Pro Santé Connect), whoever holds it."""
    return Principal(
        id=f"psc:dr-{provider.id}",
        kind=PrincipalKind.PROVIDER_USER,
        strength=AuthStrength.AAL2,
        provider_id=provider.id,
        provider_am_number=provider.am_number,
        structure=provider.am_number,
    )


def staff(name: str, kind: PrincipalKind = PrincipalKind.OPERATOR_STAFF) -> Principal:
    return Principal(id=f"staff:{name}", kind=kind, strength=AuthStrength.AAL2, insurer_id=None)


def _claims_of(platform: Platform, insurer: SeededInsurer, provider: Provider) -> Callable[[], int]:
    """Adjudicates one more claim of the provider for the insurer (an hour before now)."""
    return lambda: adjudicated_claim(
        platform, insurer_id=insurer.id, amc_number=insurer.amc_number,
        provider_id=provider.id, lines=(ACCEPTED,),
    )  # fmt: skip


def _ibans(path: Path) -> list[str]:
    return re.findall(r"<CdtrAcct><Id><IBAN>([^<]+)</IBAN>", path.read_text(encoding="utf-8"))


def _registered_iban(platform: Platform, provider: Provider, day: date, out: Path) -> str:
    """Pay the provider once to read the IBAN it was registered with."""
    summary = payments.run_payments(platform, day, out_dir=out)
    [iban] = _ibans(summary.files[0])
    return iban


def test_an_attacker_changing_the_iban_gets_no_transfer_and_raises_an_alert(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a provider with a verified account, paid on 2 November
    platform.clock = at(date(2026, 11, 2))
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(41))
    claim = _claims_of(platform, insurer, provider)
    claim()
    verified_iban = _registered_iban(platform, provider, date(2026, 11, 2), tmp_path / "p0")

    # When an attacker who phished the provider's login asks for their own IBAN
    attacker_iban = make_french_iban(random.Random(666))
    stolen = provider_login(provider)
    change = bank_details.request_change(platform, stolen, attacker_iban)

    # Then the change waits for a verification, and a security alert names the provider
    assert change.status == "pending"
    with platform.engine.connect() as conn:
        alerts = conn.execute(
            select(security_alerts.c.code, security_alerts.c.level).where(
                security_alerts.c.structure == provider.am_number
            )
        ).all()
        requested = conn.execute(
            select(audit_events.c.actor).where(
                audit_events.c.action == "bank_details.request",
                audit_events.c.structure == provider.am_number,
            )
        ).all()
    assert [(a.code, a.level) for a in alerts] == [(bank_details.ALERT_CODE, "soft")]
    assert [r.actor for r in requested] == [stolen.id]

    # And the attacker can neither verify it with the login nor ask again over it
    with pytest.raises(Forbidden) as not_staff:
        bank_details.verify_change(platform, stolen, change.id, "second_person")
    assert not_staff.value.code == "bank_details.verifier"
    with pytest.raises(Conflict) as pending:
        bank_details.request_change(platform, stolen, make_french_iban(random.Random(667)))
    assert pending.value.code == "bank_details.pending"

    # When payment runs pay the provider over the next two weeks, no one verifying
    files: list[Path] = []
    for day in (date(2026, 11, 3), date(2026, 11, 9), date(2026, 11, 16)):
        platform.clock = at(day)
        claim()
        summary = payments.run_payments(platform, day, out_dir=tmp_path / day.isoformat())
        assert summary.held_for_bank_details == ()
        files.extend(summary.files)

    # Then every transfer went to the verified account, none to the attacker's
    transfers = [iban for path in files if path.name.startswith("pain001") for iban in _ibans(path)]
    assert transfers == [verified_iban] * 3
    data_files = [p for p in platform.settings.data_dir.rglob("*") if p.is_file()]
    outputs = [p for p in tmp_path.rglob("*") if p.is_file()] + data_files
    assert not any(attacker_iban.encode() in p.read_bytes() for p in outputs)

    # When staff, warned by the alert, refuse it
    refused = bank_details.refuse_change(platform, staff("carole"), change.id)

    # Then it is closed for good
    assert refused.status == "refused"
    with pytest.raises(Conflict):
        bank_details.verify_change(platform, staff("carole"), change.id, "second_person")


def test_a_change_is_verified_by_someone_else_and_applies_after_the_cooling_off(
    platform: Platform, seed_insurer: Callable[..., SeededInsurer], tmp_path: Path
) -> None:
    # Given a provider paid on Friday 4 December, and new details asked by operator staff
    # on its behalf the same day
    platform.clock = at(date(2026, 12, 4))
    insurer = seed_insurer(platform)
    provider = make_provider(platform, random.Random(42))
    claim = _claims_of(platform, insurer, provider)
    claim()
    old_iban = _registered_iban(platform, provider, date(2026, 12, 4), tmp_path / "p0")
    new_iban = make_french_iban(random.Random(43))
    alice = staff("alice")
    change = bank_details.request_change(platform, alice, new_iban, am_number=provider.am_number)

    # When the requester tries to verify it herself
    with pytest.raises(Forbidden) as same:
        bank_details.verify_change(platform, alice, change.id, "second_person")

    # Then it is refused; an insurer's staff member verifies it, with an unknown method
    # refused first
    assert same.value.code == "bank_details.same_person"
    bruno = staff("bruno", PrincipalKind.INSURER_STAFF)
    with pytest.raises(ServiceError) as method:
        bank_details.verify_change(platform, bruno, change.id, "email")
    assert method.value.code == "bank_details.method"
    verified = bank_details.verify_change(platform, bruno, change.id, "second_person")

    # And the first transfer to it is three business days later: Wednesday 9 December
    assert verified.effective_on == date(2026, 12, 9)
    paid: dict[date, list[str]] = {}
    for day in (date(2026, 12, 7), date(2026, 12, 8), date(2026, 12, 9), date(2026, 12, 10)):
        platform.clock = at(day)
        claim()
        summary = payments.run_payments(platform, day, out_dir=tmp_path / day.isoformat())
        paid[day] = [i for p in summary.files if p.name.startswith("pain") for i in _ibans(p)]
        expected_held = (provider.am_number,) if day < verified.effective_on else ()
        assert summary.held_for_bank_details == expected_held, day

    # Then the payments held in the cooling-off period go, with the rest, to the new account
    assert paid[date(2026, 12, 7)] == paid[date(2026, 12, 8)] == []
    assert paid[date(2026, 12, 9)] == paid[date(2026, 12, 10)] == [new_iban]
    assert old_iban != new_iban
    [shown] = bank_details.provider_view(platform, provider_login(provider)).changes
    assert (shown.status, shown.iban_tail) == ("applied", new_iban[-4:])


def test_the_bank_commands_refuse_the_requester_as_verifier(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the operator console
    provider = make_provider(platform, random.Random(44))
    monkeypatch.setenv("TIERSPAYANT_DATA_DIR", str(platform.settings.data_dir))
    monkeypatch.setenv("TIERSPAYANT_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    iban = make_french_iban(random.Random(45))

    # When alice records a provider's request, then tries to verify it
    asked = runner.invoke(
        app, ["bank", "request", "--am", provider.am_number, "--iban", iban, "--by", "alice"]
    )
    assert asked.exit_code == 0, asked.output
    number = re.search(r"changement (\d+) demandé", asked.output)
    assert number is not None
    own = runner.invoke(
        app,
        ["bank", "verify", "--change", number[1], "--method", "provider_contact", "--by", "alice"],
    )

    # Then she is refused (exit 2), and bob's verification names the first payment day
    assert own.exit_code == 2
    assert "[bank_details.same_person]" in own.output
    listed = runner.invoke(app, ["bank", "pending", "--by", "bob"])
    assert f"{number[1]}: prestataire {provider.id} IBAN …{iban[-4:]}" in listed.output
    ok = runner.invoke(
        app,
        ["bank", "verify", "--change", number[1], "--method", "provider_contact", "--by", "bob"],
    )
    assert ok.exit_code == 0, ok.output
    assert "premiers virements à partir du" in ok.output
