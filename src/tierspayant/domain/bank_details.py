"""Rules of a change of a provider's bank details: who may verify it, when it applies.

A change (the new IBAN a provider, or someone holding its login, asks for) is paid to only
after a second person verified it and a cooling-off period passed: a phished provider
login alone never redirects a transfer. Until then the payment run pays the account
verified before (see ``docs/money.md``).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from tierspayant.domain.banking_calendar import add_business_days


class VerificationMethod(StrEnum):
    """How a change was verified, by staff other than the requester."""

    SECOND_PERSON = "second_person"  # insurer or operator staff checked the bank's proof
    PROVIDER_CONTACT = "provider_contact"  # confirmed by the provider's known contact


def first_payment_day(verified_on: date, cooling_off_days: int) -> date:
    """The first payment date that may pay new details verified on ``verified_on``:
    ``cooling_off_days`` TARGET2 business days later (the day itself with none)."""
    return verified_on if cooling_off_days < 1 else add_business_days(verified_on, cooling_off_days)


def iban_tail(iban: str) -> str:
    """What people are shown of an IBAN: its last four characters."""
    return iban[-4:]
