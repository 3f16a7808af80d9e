"""Card-bound lookups over HTTP: a valid 2D code unlocks normal quotas; a well-formed but
bad one is a 403 with one body, an audit event and an attack signal; a scan that does not
parse is a misread (422, counted with the misses, never a signal); the signing keys are
published."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from tests.api.fhir_support import FHIR, eligibility_request
from tests.integration.test_cards import (
    ACTOR,
    Person,
    World,
    issue,
    make_world,
    provider_token,
)
from tests.support.misreads import layout_swaps, misread_of
from tierspayant.api.app import create_app
from tierspayant.app.platform import Platform
from tierspayant.demo.synthetic import nir_key
from tierspayant.formats import card_pdf
from tierspayant.formats import harmonised_card as harmonised
from tierspayant.formats.fhir import systems
from tierspayant.security import cardsig
from tierspayant.services import cards
from tierspayant.services.insurers import get_insurer
from tierspayant.store.security_tables import security_alerts
from tierspayant.store.tables import audit_events, principals

with warnings.catch_warnings():
    # Starlette warns that it prefers httpx2 to httpx; the client works the same.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

RNG = random.Random(1789)
REFUSED = {"error": {"code": "card.proof_invalid", "message": "this card cannot be accepted"}}
MISREAD = "card.misread"


class Counter:
    """One provider's software: a token, a principal id, and an HTTP client."""

    def __init__(self, platform: Platform, client: TestClient) -> None:
        self.platform = platform
        self.client = client
        token, self.principal = provider_token(platform, RNG)
        self.headers = {"Authorization": f"Bearer {token}"}

    def check(self, world: World, person: Person, proof: str | None) -> Any:
        body: dict[str, Any] = {
            "card": {
                "amc_number": world.amc,
                "nir": person.nir,
                "birth_rank": person.birth_rank,
                "birth_date": person.birth_date,
            },
            "care_date": self.platform.today().isoformat(),
            "domains": ["PHAR"],
        }
        if proof is not None:
            body["card_proof"] = proof
        return self.client.post("/v1/eligibility", json=body, headers=self.headers)

    def calculate(self, world: World, person: Person, proof: str) -> Any:
        body = {
            "card": {
                "amc_number": world.amc,
                "nir": person.nir,
                "birth_rank": person.birth_rank,
                "birth_date": person.birth_date,
            },
            "care_date": self.platform.today().isoformat(),
            "lines": [
                {
                    "act_code": "G",
                    "domain": "MED",
                    "family": "consultation",
                    "billed_cents": 3000,
                    "br_cents": 3000,
                }
            ],
            "card_proof": proof,
        }
        return self.client.post("/v1/calculations", json=body, headers=self.headers)

    def status(self) -> str:
        with self.platform.engine.connect() as conn:
            return str(
                conn.execute(
                    select(principals.c.status).where(principals.c.id == self.principal)
                ).scalar_one()
            )

    def alerts(self) -> list[str]:
        with self.platform.engine.connect() as conn:
            return list(
                conn.execute(
                    select(security_alerts.c.code).where(
                        security_alerts.c.principal == self.principal
                    )
                ).scalars()
            )


def holders(world: World, printed: list[card_pdf.CardPrint]) -> list[tuple[Person, str]]:
    """One printed beneficiary per card, with the card's QR text."""
    pairs = []
    for card in printed:
        births = {b.birth_date.isoformat() for b in card.beneficiaries}
        person = next(p for p in world.family(card.member_number) if p.birth_date in births)
        pairs.append((person, card.qr_text))
    return pairs


@pytest.fixture
def printed_cards(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[World, list[card_pdf.CardPrint], TestClient]:
    printed: list[card_pdf.CardPrint] = []
    real = card_pdf.write_card

    def spy(card: card_pdf.CardPrint, directory: Path) -> Path:
        printed.append(card)
        return real(card, directory)

    monkeypatch.setattr(cards, "write_card", spy)
    world = make_world(platform, tmp_path, count=45, seed=11)
    issue(world, printed)
    return world, printed, TestClient(create_app(platform))


@pytest.fixture
def carded(
    printed_cards: tuple[World, list[card_pdf.CardPrint], TestClient],
) -> tuple[World, list[tuple[Person, str]], TestClient]:
    world, printed, client = printed_cards
    return world, holders(world, printed), client


def flip(text: str, byte: int) -> str:
    raw = bytearray(cardsig.b45decode(text[4:]))
    raw[byte] ^= 0x01
    return "TP1:" + cardsig.b45encode(bytes(raw))


def resign(platform: Platform, world: World, qr: str, *, serial: bytes | None = None) -> str:
    """A payload signed with the insurer's real key but a secret (or serial) never issued:
    what a thief of the signing key, but not of the cards, could make."""
    payload = cardsig.peek(qr)
    with platform.engine.begin() as conn:
        _, key = cards._signing_key(platform, conn, get_insurer(conn, world.amc))
    forged = dataclasses.replace(
        payload, secret=bytes(16), serial=payload.serial if serial is None else serial
    )
    return cardsig.sign(forged, key)


def test_given_valid_proofs_then_lookups_pass_the_no_proof_quota(
    platform: Platform, carded: tuple[World, list[tuple[Person, str]], TestClient]
) -> None:
    world, pairs, client = carded
    assert len(pairs) >= 12
    with_proof, without = Counter(platform, client), Counter(platform, client)
    answers = [with_proof.check(world, p, qr).status_code for p, qr in pairs[:12]]
    assert answers == [200] * 12
    plain = [without.check(world, p, None).status_code for p, _ in pairs[:12]]
    assert plain[:10] == [200] * 10
    assert plain[10] == 401  # step-up: the no-proof quota is small
    with platform.engine.connect() as conn:
        details = conn.execute(
            select(audit_events.c.detail).where(
                audit_events.c.actor == with_proof.principal,
                audit_events.c.action == "eligibility.check",
            )
        ).scalars()
        assert all(json.loads(d)["proof"] is True for d in details)
    assert with_proof.status() == "active"


def test_given_a_valid_proof_then_calculation_accepts_it(
    platform: Platform, carded: tuple[World, list[tuple[Person, str]], TestClient]
) -> None:
    world, pairs, client = carded
    person, qr = pairs[0]
    response = Counter(platform, client).calculate(world, person, qr)
    assert response.status_code in (200, 422)
    assert response.json().get("error", {}).get("code") != "card.proof_invalid"


def test_given_bad_proofs_then_one_403_body_an_audit_event_and_a_signal_each(
    platform: Platform, carded: tuple[World, list[tuple[Person, str]], TestClient]
) -> None:
    world, pairs, client = carded
    (alice, alice_qr), (bob, bob_qr), (carol, carol_qr) = pairs[:3]
    cards.revoke_card(platform, world.amc, cardsig.peek(bob_qr).serial_text, "vol", ACTOR)
    old_carol = carol_qr
    cards.issue_family_card(
        platform,
        world.amc,
        next(m for m in world.qr_by_member if world.qr_by_member[m] == carol_qr),
        platform.today().year,
        world.out,
        ACTOR,
    )
    stranger = Person("Z", "1800175001001" + nir_key("1800175001001"), 1, "1980-01-01")
    cases = {
        "revoked": (bob, bob_qr, "guard.proof_revoked"),
        "superseded": (carol, old_carol, "guard.proof_revoked"),
        "forged_signature": (alice, flip(alice_qr, -1), "guard.proof_forged"),
        "flipped_secret": (alice, flip(alice_qr, -70), "guard.proof_forged"),
        "signed_wrong_secret": (alice, resign(platform, world, alice_qr), "guard.proof_forged"),
        "signed_unknown_serial": (
            alice,
            resign(platform, world, alice_qr, serial=b"\x00" * 10),
            "guard.proof_forged",
        ),
        "signed_with_another_key": (
            alice,
            cardsig.sign(cardsig.peek(alice_qr), cardsig.new_signing_key()),
            "guard.proof_forged",
        ),
        "other_family": (alice, pairs[3][1], "guard.proof_mismatch"),
        "unknown_person": (stranger, alice_qr, "guard.proof_mismatch"),
    }
    for name, (person, proof, signal) in cases.items():
        counter = Counter(platform, client)
        response = counter.check(world, person, proof)
        assert (name, response.status_code, response.json()) == (name, 403, REFUSED)
        assert counter.alerts() == [signal], name
        assert counter.status() == "suspended", name
        with platform.engine.connect() as conn:
            refused = conn.execute(
                select(audit_events.c.decision).where(
                    audit_events.c.actor == counter.principal,
                    audit_events.c.action == "card.proof_refused",
                )
            ).scalars()
            assert list(refused) == ["deny"], name
    revoked_calc = Counter(platform, client).calculate(world, bob, bob_qr)
    assert (revoked_calc.status_code, revoked_calc.json()) == (403, REFUSED)


def misread_events(platform: Platform, principal: str) -> list[str]:
    with platform.engine.connect() as conn:
        return list(
            conn.execute(
                select(audit_events.c.detail).where(
                    audit_events.c.actor == principal,
                    audit_events.c.action == "card.proof_misread",
                )
            ).scalars()
        )


@settings(
    max_examples=4,
    deadline=None,
    phases=(Phase.explicit, Phase.generate),  # each example is ~80 requests: no shrinking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_given_misreads_in_a_row_then_422_each_and_never_a_signal_nor_a_suspension(
    platform: Platform,
    carded: tuple[World, list[tuple[Person, str]], TestClient],
    data: st.DataObject,
) -> None:
    world, pairs, client = carded
    counter = Counter(platform, client)
    person, qr = pairs[0]
    # Given misreads of real cards: cut short, typed on the other keyboard layout, garbage
    texts = ["TP&MQBCDEF%%GHIJ", "tp1:lowercase", "TP1:ABCDEF", *layout_swaps(qr)]
    texts += [data.draw(misread_of(p_qr)) for _, p_qr in pairs[:36]]
    for text in texts:
        # When each is sent as the card proof of a rights check, then of a calculation
        for response in (
            counter.check(world, person, text),
            counter.calculate(world, person, text),
        ):
            # Then a misread: 422, its own code, the text not echoed back
            assert response.status_code == 422, text
            assert response.json()["error"]["code"] == MISREAD, text
            assert len(text) < 8 or text not in response.text
    # And the account is untouched, no signal at all, each misread audited
    assert counter.status() == "active"
    assert counter.alerts() == []
    assert len(misread_events(platform, counter.principal)) == 2 * len(texts)
    # And the real card, scanned right, is answered with normal quotas
    assert counter.check(world, person, qr).status_code == 200


def test_given_misreads_then_they_count_with_the_misses_before_a_lookup_without_card(
    platform: Platform, carded: tuple[World, list[tuple[Person, str]], TestClient]
) -> None:
    world, pairs, client = carded
    (person, qr), (other, _) = pairs[:2]
    swapped = layout_swaps(qr)[0]
    # Given 9 misreads in a row: a typed lookup is answered as usual
    patient = Counter(platform, client)
    for _ in range(9):
        assert patient.check(world, person, swapped).status_code == 422
    assert patient.check(world, other, None).status_code == 200
    # Given 10 misreads (more than 30 % of at least 10): a lookup without card asks step-up
    counter = Counter(platform, client)
    for _ in range(10):
        assert counter.check(world, person, swapped).status_code == 422
    asked = counter.check(world, other, None)
    assert (asked.status_code, asked.json()["error"]["code"]) == (401, "auth.step_up_required")
    # But the card scanned right still passes, and nobody is suspended
    assert counter.check(world, person, qr).status_code == 200
    assert counter.status() == patient.status() == "active"
    assert counter.alerts() == ["guard.misread_ratio_soft"]


def test_given_the_published_keys_then_provider_software_verifies_cards_offline(
    platform: Platform, carded: tuple[World, list[tuple[Person, str]], TestClient]
) -> None:
    world, pairs, client = carded
    assert client.get("/v1/card-keys").status_code == 401
    counter = Counter(platform, client)
    response = client.get("/v1/card-keys", headers=counter.headers)
    assert response.status_code == 200
    keys = {
        (k["amc_number"], k["key_id"]): base64.urlsafe_b64decode(k["public_key"] + "==")
        for k in response.json()["keys"]
    }
    assert all(k["algorithm"] == "Ed25519" for k in response.json()["keys"])
    for _, qr in pairs:
        peeked = cardsig.peek(qr)
        assert cardsig.verify(qr, keys[(world.amc, peeked.key_id)]) == peeked


def test_given_scanned_codes_then_decode_answers_fields_and_proof_status_only(
    platform: Platform,
    carded: tuple[World, list[tuple[Person, str]], TestClient],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    world, _, client = carded
    printed: list[card_pdf.CardPrint] = []
    real = card_pdf.write_card

    def spy(card: card_pdf.CardPrint, directory: Path) -> Path:
        printed.append(card)
        return real(card, directory)

    monkeypatch.setattr(cards, "write_card", spy)
    member = next(iter(world.qr_by_member))
    cards.issue_family_card(
        platform, world.amc, member, platform.today().year, tmp_path / "one", ACTOR
    )
    card = printed[0]
    assert client.post("/v1/cards/decode", json={"payload": card.qr_text}).status_code == 401
    counter = Counter(platform, client)

    def decode(text: str) -> Any:
        return client.post("/v1/cards/decode", json={"payload": text}, headers=counter.headers)

    answer = decode(card.datamatrix_text)
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert (body["proof"], body["serial"]) == ("valid", card.serial)
    assert body["card"]["member_number"] == member
    assert body["card"]["responsable"] is True
    assert body["card"]["beneficiaries"][0]["rights"][0]["domain"] == "PHAR"
    assert "birth_date" not in json.dumps(body)  # identity is not restated
    qr = decode(card.qr_text).json()
    assert (qr["proof"], qr["card"], qr["serial"]) == ("valid", None, card.serial)
    # A revoked card decodes the same: decode tells nothing a lookup would.
    cards.revoke_card(platform, world.amc, card.serial, "perte", ACTOR)
    assert decode(card.datamatrix_text).json() == body
    forged = decode(card.datamatrix_text.replace("|R|", "|N|", 1))
    assert (forged.status_code, forged.json()["proof"]) == (200, "invalid")
    for misread in ("TP&MQBCDEF%%GHIJ", card.datamatrix_text[:-3], "TP1:ABCDEF", "x"):
        response = decode(misread)
        assert response.status_code == 422, misread
        assert response.json()["error"]["code"] == "card.misread"
        assert misread not in json.dumps(response.json())
    assert decode("é" * 2001).status_code == 422
    assert counter.status() == "active"
    assert counter.alerts() == []


def fhir_check(counter: Counter, world: World, person: Person, proof: str) -> Any:
    card = {"amc_number": world.amc, "nir": person.nir, "birth_rank": person.birth_rank,
            "birth_date": person.birth_date}  # fmt: skip
    resource = eligibility_request(card, ["PHAR"], counter.platform.today())
    resource["extension"] = [{"url": systems.CARD_PROOF, "valueString": proof}]
    return counter.client.post(
        "/fhir/CoverageEligibilityRequest",
        content=json.dumps(resource),
        headers={**counter.headers, "Content-Type": FHIR},
    )


def test_given_the_harmonised_datamatrix_as_card_proof_then_one_scan_does(
    platform: Platform, printed_cards: tuple[World, list[card_pdf.CardPrint], TestClient]
) -> None:
    world, printed, client = printed_cards
    (alice, _), _ = holders(world, printed[:2])
    alice_dm, bob_dm = printed[0].datamatrix_text, printed[1].datamatrix_text
    assert alice_dm.startswith("TPH1|")
    assert printed[0].qr_text in alice_dm
    # Given the whole DataMatrix text sent as the card proof, through /v1 and FHIR
    counter = Counter(platform, client)
    assert counter.check(world, alice, alice_dm).status_code == 200
    assert counter.calculate(world, alice, alice_dm).json().get("error", {}).get("code") != (
        "card.proof_invalid"
    )
    by_fhir = fhir_check(counter, world, alice, alice_dm)
    assert by_fhir.status_code == 200, by_fhir.text
    # Then it counts as a verified proof, and nothing is held against the account
    with platform.engine.connect() as conn:
        details = conn.execute(
            select(audit_events.c.detail).where(
                audit_events.c.actor == counter.principal,
                audit_events.c.action == "eligibility.check",
            )
        ).scalars()
        assert [json.loads(d)["proof"] for d in details] == [True, True]
    assert (counter.status(), counter.alerts()) == ("active", [])
    # Given DataMatrix texts that do not parse, or carry no proof: misreads, never a signal
    bare = harmonised.fields_text(harmonised.decode(alice_dm).card)
    for text in (alice_dm[:-3], alice_dm.replace("|R|", "|X|", 1), bare, "TPH1|x"):
        for response in (
            counter.check(world, alice, text),
            fhir_check(counter, world, alice, text),
        ):
            assert response.status_code == 422, text
            assert MISREAD in response.text, text
    assert (counter.status(), counter.alerts()) == ("active", [])
    # Given well-formed DataMatrix texts that a forger made: one 403, a signal, suspension
    proof = printed[0].qr_text
    cases = {
        "box altered": (alice, alice_dm.replace("|R|", "|N|", 1), "guard.proof_forged"),
        "embedded proof altered": (alice, alice_dm.replace(proof, flip(proof, -1)),
                                   "guard.proof_forged"),
        "box of another card": (alice, bob_dm.replace(printed[1].qr_text, proof),
                                "guard.proof_forged"),
        "another family's card": (alice, bob_dm, "guard.proof_mismatch"),
    }  # fmt: skip
    for name, (person, text, signal) in cases.items():
        counter = Counter(platform, client)
        response = counter.check(world, person, text)
        assert (name, response.status_code, response.json()) == (name, 403, REFUSED)
        assert counter.alerts() == [signal], name
        assert counter.status() == "suspended", name
