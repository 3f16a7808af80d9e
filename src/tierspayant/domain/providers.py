"""Kinds of health professionals and the care domains they bill in."""

from __future__ import annotations

from enum import StrEnum

from tierspayant.domain.care import CareDomain


class ProviderCategory(StrEnum):
    PHARMACY = "pharmacy"
    GP = "gp"
    SPECIALIST = "specialist"
    DENTIST = "dentist"
    LABORATORY = "laboratory"
    RADIOLOGY = "radiology"
    OPTICIAN = "optician"
    AUDIOLOGIST = "audiologist"
    NURSE = "nurse"
    PHYSIOTHERAPIST = "physiotherapist"
    MIDWIFE = "midwife"
    AMBULANCE = "ambulance"
    HEALTH_CENTRE = "health_centre"
    HOSPITAL = "hospital"


DOMAINS_BY_CATEGORY: dict[ProviderCategory, frozenset[CareDomain]] = {
    ProviderCategory.PHARMACY: frozenset({CareDomain.PHAR}),
    ProviderCategory.GP: frozenset({CareDomain.MED}),
    ProviderCategory.SPECIALIST: frozenset({CareDomain.MED}),
    ProviderCategory.DENTIST: frozenset({CareDomain.DENT}),
    ProviderCategory.LABORATORY: frozenset({CareDomain.LABO}),
    ProviderCategory.RADIOLOGY: frozenset({CareDomain.RADIO}),
    ProviderCategory.OPTICIAN: frozenset({CareDomain.OPTI}),
    ProviderCategory.AUDIOLOGIST: frozenset({CareDomain.AUDI}),
    ProviderCategory.NURSE: frozenset({CareDomain.AUXM}),
    ProviderCategory.PHYSIOTHERAPIST: frozenset({CareDomain.AUXM}),
    ProviderCategory.MIDWIFE: frozenset({CareDomain.SAGE}),
    ProviderCategory.AMBULANCE: frozenset({CareDomain.TRAN}),
    ProviderCategory.HEALTH_CENTRE: frozenset(
        {CareDomain.CSTE, CareDomain.MED, CareDomain.DENT, CareDomain.AUXM}
    ),
    ProviderCategory.HOSPITAL: frozenset({CareDomain.HOSP, CareDomain.EXTE}),
}


def default_domains(category: ProviderCategory) -> frozenset[CareDomain]:
    """The care domains a provider of ``category`` usually bills in."""
    return DOMAINS_BY_CATEGORY[category]
