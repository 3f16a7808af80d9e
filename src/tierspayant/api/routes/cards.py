"""Cards: the public keys that sign the cards' 2D codes.

Every route declares its policy: ``**policy(Policy.…)`` and the matching dependency
from :mod:`tierspayant.api.deps`.
"""

from __future__ import annotations

import base64

from fastapi import APIRouter

from tierspayant.api.deps import PlatformDep, Policy, ProviderPrincipal, policy
from tierspayant.api.schemas import CardKeyOut, CardKeysOut
from tierspayant.services import cards

router = APIRouter()


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
