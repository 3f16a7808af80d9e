"""Who is calling: the authenticated principal every service receives."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PrincipalKind(StrEnum):
    PROVIDER_CLIENT = "provider_client"  # provider software, OAuth2 client credentials
    PROVIDER_USER = "provider_user"  # a health professional in the portal (OIDC)
    INSURER_STAFF = "insurer_staff"
    OPERATOR_STAFF = "operator_staff"
    MEMBER = "member"


class AuthStrength(StrEnum):
    """Assurance level of the authentication (NIST 800-63B AAL)."""

    AAL1 = "aal1"
    AAL2 = "aal2"
    AAL3 = "aal3"


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``structure`` is the FINESS/SIRET/AM number it acts for."""

    id: str
    kind: PrincipalKind
    strength: AuthStrength
    provider_id: int | None = None
    provider_am_number: str | None = None
    structure: str | None = None
    insurer_id: int | None = None
    beneficiary_id: int | None = None  # members: the beneficiary they are (with insurer_id)
    provider_category: str | None = None  # providers: profession (sets the guard's daily cap)
