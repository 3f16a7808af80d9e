"""The facts a counter's pricing reads (calculation, prior authorisation), for one person.

Adjudication reads the same facts for a whole batch (:mod:`tierspayant.services.adjudication`);
both hand them to :mod:`tierspayant.domain.facts`, which applies them one way. The
provider's conventions are checked first, before anything about the person is read: the
refusal depends on the provider and the insurer only, so it may have its own code without
telling anything about whom the card designates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

from sqlalchemy import Connection

from tierspayant.app.platform import Platform
from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import ErrorCode
from tierspayant.domain.eligibility import Coverage, age_on
from tierspayant.domain.facts import CounterUse, PricingFacts, without_convention
from tierspayant.services.errors import Unprocessable
from tierspayant.services.identification import Identified
from tierspayant.services.insurers import Insurer
from tierspayant.store import adjudication as store
from tierspayant.store.adjudication import ProviderTerms

NO_PROVIDER = ProviderTerms(optam=False, conventions={})


def provider_under_convention(
    conn: Connection,
    insurer_id: int,
    provider_id: int | None,
    needs: Iterable[tuple[CareDomain, date]],
    code: ErrorCode,
) -> ProviderTerms:
    """The provider's terms with the insurer, or ``code`` when a (domain, care date) of
    ``needs`` is outside its conventions (a caller tied to no provider has none)."""
    terms = (
        NO_PROVIDER if provider_id is None else store.provider_terms(conn, insurer_id, provider_id)
    )
    missing = without_convention(terms.conventions, needs)
    if missing:
        domains = ", ".join(missing)
        raise Unprocessable(
            code,
            f"no convention of this professional with this insurer for {domains}",
            field="lines",
        )
    return terms


def person_facts(
    platform: Platform,
    conn: Connection,
    insurer: Insurer,
    found: Identified,
    care_date: date,
    provider: ProviderTerms,
    reserved: Sequence[CounterUse],
) -> PricingFacts | None:
    """The person's pricing facts on ``care_date``; None when they have no rights then
    (outside the coverage, or a contract missing from the catalogue).

    ``reserved``: what open engagements on amounts hold of the ceilings (read by the caller),
    the engagement the request carries or repeats excepted
    (:func:`tierspayant.domain.engagements.carried_by`, a calculation's retry)."""
    record = found.record
    coverage = Coverage(record.contract_code, record.coverage_start, record.coverage_end)
    if not coverage.covers(care_date):
        return None
    contract = platform.catalogues.contract(conn, insurer.id, record.contract_code)
    if contract is None:
        return None
    return store.pricing_facts(
        conn,
        insurer.id,
        record.id,
        contract=contract,
        coverage=coverage,
        age=age_on(found.birth_date, care_date),
        css=record.css,
        provider=provider,
        reserved=tuple(reserved),
    )
