"""A small seeded platform for the portal tests, the browser tests and the portal bench.

One insurer with the packaged demo catalogue and a few synthetic beneficiaries, one
pharmacy whose professional logs in by OpenID Connect, and one password + TOTP account
per other portal (two operators: reinstatement needs a second approver). The clock is
the wall clock plus an offset the tests move, so that a new TOTP step is available for
each login without waiting 30 seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyotp

from tests.support import world as core
from tierspayant.app.platform import Platform
from tierspayant.demo.accounts import demo_password
from tierspayant.demo.builder import DEMO_INSURERS, demo_catalogue
from tierspayant.formats import card_pdf
from tierspayant.security.oidc import OidcIdentity
from tierspayant.security.principal import AuthStrength, Principal, PrincipalKind
from tierspayant.services import accounts, alerts, cards
from tierspayant.services.accounts import AccountKind
from tierspayant.services.identification import CardData

AMC, INSURER_NAME, INSURER_KIND, CATALOGUE_FILE = DEMO_INSURERS[0]
PHARMACY_NAME = "Pharmacie du Marché – Lyon"
PHARMACIST_NAME = "Marie Dupont"

Clock = core.WallClock  # wall clock plus an offset moved by hand


@dataclass(frozen=True)
class Login:
    login: str
    password: str
    secret: str
    kind: AccountKind


@dataclass
class World:
    platform: Platform
    clock: Clock
    insurer_id: int
    card: dict[str, str]  # amc_number, nir, birth_rank, birth_date of the member
    other_cards: list[dict[str, str]]
    beneficiary_id: int
    provider_am: str
    provider_id: int
    structure: str
    rpps: str
    logins: dict[str, Login] = field(default_factory=dict)

    def code(self, name: str) -> str:
        """A TOTP code of a fresh step (moves the clock 30 s)."""
        self.clock.advance(30)
        return pyotp.TOTP(self.logins[name].secret).at(self.clock())

    def provider_session(self) -> accounts.Session:
        """A professional's session as the OIDC callback opens it (the flow itself is
        exercised in the browser tests against a real test issuer)."""
        now = self.clock()
        identity = OidcIdentity(
            "https://psc.example", f"psc-{self.rpps}", self.rpps, "eidas2", ("pop",), now
        )
        return accounts.login_oidc(self.platform, identity)


def _beneficiary_id(platform: Platform, card: dict[str, str]) -> int:
    data = CardData(
        AMC, date.fromisoformat(card["birth_date"]), card["nir"], int(card["birth_rank"])
    )
    return core.beneficiary_id(platform, data)


def _account(
    world: World,
    name: str,
    kind: AccountKind,
    login: str,
    *,
    insurer_id: int | None = None,
    beneficiary_id: int | None = None,
) -> None:
    password = demo_password()
    secret = core.add_account(
        world.platform, kind, login, password, actor="test",
        insurer_id=insurer_id, beneficiary_id=beneficiary_id,
    )  # fmt: skip
    world.logins[name] = Login(login, password, secret, kind)


def card_payload(world: World, directory: Path) -> str:
    """Issue the member's family card and return the text of its 2D code, as a reader
    would type it (the PDF writer is watched to catch the text it prints)."""
    return card_codes(world, directory)[0]


def card_codes(world: World, directory: Path) -> tuple[str, str]:
    """Issue the member's family card: the texts of its QR code and of its DataMatrix."""
    printed: list[card_pdf.CardPrint] = []
    real = card_pdf.write_card

    def watch(card: card_pdf.CardPrint, folder: Path) -> Path:
        printed.append(card)
        return real(card, folder)

    setattr(cards, "write_card", watch)  # noqa: B010 - the services module's own name
    try:
        year = world.platform.today().year
        cards.issue_family_card(
            world.platform, AMC, world.card["member_number"], year, directory, "test"
        )
    finally:
        setattr(cards, "write_card", real)  # noqa: B010
    return printed[-1].qr_text, printed[-1].datamatrix_text


def build_world(
    data_dir: Path,
    *,
    env: dict[str, str] | None = None,
    beneficiaries: int = 12,
    members: int = 1,
    url: str | None = None,
) -> World:
    """Seed a fresh platform under ``data_dir`` (SQLite, or the empty database ``url``
    names), with ``env``'s settings besides."""
    clock = Clock()
    platform = core.open_platform(data_dir, url=url, env=env, clock=clock)
    insurer = core.add_insurer(
        platform, demo_catalogue(CATALOGUE_FILE), name=INSURER_NAME, kind=INSURER_KIND
    )
    people = core.enrol(
        platform, AMC, beneficiaries, 7, insurer.contracts, date(platform.today().year, 1, 1),
        path=data_dir / "beneficiaires.csv", file_date=platform.today(), workers=None,
    )  # fmt: skip
    pharmacy = core.add_provider(
        platform, random.Random(5), "pharmacy", name=PHARMACY_NAME, amcs=(AMC,),
        since=date(2024, 1, 1), department="69", rpps=True, finess=True,
    )  # fmt: skip
    assert pharmacy.rpps is not None
    accounts.create_account(
        platform,
        AccountKind.PROVIDER_USER,
        None,
        None,
        actor="test",
        provider_id=pharmacy.id,
        rpps=pharmacy.rpps,
        display_name=PHARMACIST_NAME,
    )
    world = World(
        platform,
        clock,
        insurer.id,
        people[0].card_fields(),
        [person.card_fields() for person in people[1:]],
        core.beneficiary_id(platform, people[0]),
        pharmacy.am_number,
        pharmacy.id,
        pharmacy.structure,
        pharmacy.rpps,
    )
    _account(
        world, "staff", AccountKind.INSURER_STAFF, "gestion@tilleuls.example", insurer_id=insurer.id
    )
    _account(world, "operator1", AccountKind.OPERATOR_STAFF, "secu.un@operateur.example")
    _account(world, "operator2", AccountKind.OPERATOR_STAFF, "secu.deux@operateur.example")
    for index, person in enumerate(people[:members]):
        name = "member" if index == 0 else f"member{index}"
        _account(
            world,
            name,
            AccountKind.MEMBER,
            f"{name}@adherent.example",
            insurer_id=insurer.id,
            beneficiary_id=core.beneficiary_id(platform, person),
        )
    return world


def reinstate(world: World, principal_id: str) -> None:
    """Lift a suspension as two operators would, for the tests that follow."""
    approvers = []
    for name in ("operator1", "operator2"):
        account = accounts.find_account(world.platform, world.logins[name].login)
        assert account is not None
        approvers.append(
            Principal(account.principal_id, PrincipalKind.OPERATOR_STAFF, AuthStrength.AAL2)
        )
    alerts.reinstate_principal(world.platform, principal_id, approvers[0], approvers[1])
