"""Closed sets of the care domain: care domains as printed on the card, exemptions, sexes."""

from __future__ import annotations

from enum import StrEnum


class CareDomain(StrEnum):
    """Care domains of the tiers payant card (one code per column of the card)."""

    PHAR = "PHAR"  # pharmacy
    MED = "MED"  # doctors
    LABO = "LABO"  # laboratories
    RADIO = "RADIO"  # radiology
    AUXM = "AUXM"  # auxiliaires médicaux: nurses, physiotherapists…
    DENT = "DENT"  # dental
    OPTI = "OPTI"  # optics
    AUDI = "AUDI"  # hearing aids
    HOSP = "HOSP"  # hospital
    SAGE = "SAGE"  # midwives
    TRAN = "TRAN"  # transport
    CSTE = "CSTE"  # health centres
    EXTE = "EXTE"  # hospital outpatient


class Exemption(StrEnum):
    """Reasons the AMO pays 100 % of the BR (exonération du ticket modérateur)."""

    NONE = "none"
    ALD = "ald"  # affection de longue durée
    MATERNITY = "maternity"  # from the 6th month of pregnancy
    WORK_ACCIDENT = "work_accident"  # accident du travail / maladie professionnelle
    CSS = "css"  # complémentaire santé solidaire


class Sex(StrEnum):
    MALE = "M"
    FEMALE = "F"


class Quality(StrEnum):
    """Quality of a beneficiary within the family (qualité du bénéficiaire)."""

    MEMBER = "member"  # adhérent / assuré principal
    SPOUSE = "spouse"  # conjoint
    CHILD = "child"  # enfant
    OTHER = "other"  # autre ayant droit
