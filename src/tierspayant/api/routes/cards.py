"""Cards: the public keys that sign the cards' 2D codes, and decoding a scanned code.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter

from tierspayant.api.deps import PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.json_body import StrictJsonRoute
from tierspayant.api.schemas import (
    BeneficiaryRightsOut,
    CardDecodeIn,
    CardDecodeOut,
    CardKeyOut,
    CardKeysOut,
    HarmonisedCardOut,
    RightOut,
)
from tierspayant.formats import harmonised_card
from tierspayant.services import card_scans, cards

router = APIRouter(route_class=StrictJsonRoute)


@router.get(
    "/v1/card-keys",
    tags=["cards"],
    response_model=CardKeysOut,
    summary="Public keys that sign the cards' 2D codes (offline verification)",
    **policy(Policy.PROVIDER),
)
def card_keys(principal: ProviderPrincipal, platform: PlatformDep) -> CardKeysOut:
    """Every insurer's card-signing public keys, by key id (``docs/cards.md``)."""
    del principal  # the policy is the check: any provider may fetch the keys
    return CardKeysOut(
        keys=[
            CardKeyOut(
                amc_number=k.amc_number,
                key_id=k.key_id,
                algorithm="Ed25519",
                public_key=base64.urlsafe_b64encode(k.public_key).rstrip(b"=").decode("ascii"),
                active=k.active,
                created_at=k.created_at,
            )
            for k in cards.public_keys(platform)
        ]
    )


@router.post(
    "/v1/cards/decode",
    tags=["cards"],
    response_model=CardDecodeOut,
    summary="Decode a scanned card code (DataMatrix or QR) and check its signature",
    **policy(Policy.PROVIDER),
)
def decode_card(
    body: CardDecodeIn, principal: ProviderPrincipal, platform: PlatformDep
) -> CardDecodeOut:
    """What provider software can do offline with the published keys (``docs/cards.md``).

    The answer holds only what the scanned text carries, and whether its signature checks
    out: nothing about the card's status or holder, so it is no lookup and no oracle.
    """
    decoded = card_scans.decode_scan(platform, body.payload, principal.id)
    fields = decoded.fields
    return CardDecodeOut(
        proof=decoded.proof.value,
        serial=decoded.serial,
        key_id=decoded.key_id,
        card=None
        if fields is None
        else HarmonisedCardOut(
            layout=harmonised_card.PREFIX,
            amc_number=fields.amc_number,
            convention_type=fields.convention_type,
            routing_criterion=fields.routing_criterion,
            member_number=fields.member_number,
            valid_from=fields.valid_from,
            valid_until=fields.valid_until,
            responsable=fields.responsable,
            beneficiaries=[
                BeneficiaryRightsOut(
                    rank=b.rank,
                    rights=[
                        RightOut(
                            domain=r.domain,
                            tiers_payant=r.tiers_payant,
                            coverage_code=r.coverage_code,
                        )
                        for r in b.rights
                    ],
                )
                for b in fields.beneficiaries
            ],
        ),
    )
