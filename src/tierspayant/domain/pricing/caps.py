"""Step 2: the contrat responsable caps of class B optics and hearing aids.

An optical equipment (frame + lenses) is capped as a whole, by the ceiling of its lenses'
complexity, and the frame within it; a hearing aid is capped per unit, AMO share included.
"""

from __future__ import annotations

from collections.abc import Sequence

from tierspayant.domain.pricing.explain import eur
from tierspayant.domain.pricing.model import PricingLine, RssClass
from tierspayant.domain.reference import ReferenceRules, lens_pair


def hearing_aid_cap(
    rules: ReferenceRules, quantity: int, amo_base: int, amc: int, notes: list[str]
) -> int:
    """``amc`` within the class II limit per hearing aid, which counts the AMO share."""
    cap = max(0, rules.hearing_class_ii_cap_cents * quantity - amo_base)
    if amc > cap:
        amc = cap
        notes.append(
            "capped by the contrat responsable limit of "
            f"{eur(rules.hearing_class_ii_cap_cents)} per hearing aid, "
            f"AMO included: {eur(cap)}"
        )
    return amc


class OpticsCaps:
    """Contrat responsable caps of one class B optical equipment over an invoice.

    The class of the equipment is given by its lenses (a single lens counts as a pair of
    its kind); the frame has its own cap within the equipment's.
    """

    __slots__ = ("equipment_left", "frame_cap", "frame_left", "label")

    def __init__(self, equipment_cap: int, frame_cap: int, label: str) -> None:
        self.equipment_left = equipment_cap
        self.frame_cap = frame_cap
        self.frame_left = frame_cap
        self.label = label

    @classmethod
    def for_invoice(cls, lines: Sequence[PricingLine], rules: ReferenceRules) -> OpticsCaps:
        """The caps of the equipment the class B optical lines of an invoice make up."""
        complexities = [
            fam.lens_complexity
            for line in lines
            if line.rss_class != RssClass.A
            and (fam := rules.families.get(line.family)) is not None
            and fam.lens_complexity is not None
        ]
        caps = rules.optics_equipment_caps
        if not complexities:
            return cls(
                max(c.ceiling_cents for c in caps.values()),
                rules.optics_frame_cap_cents,
                "frame-only",
            )
        pair = lens_pair(complexities[0], complexities[1 if len(complexities) > 1 else 0])
        return cls(caps[pair].ceiling_cents, rules.optics_frame_cap_cents, "/".join(pair))

    def cap(self, equipment: str, amc: int, notes: list[str]) -> int:
        """``amc`` of one item (``frame`` or ``lens``) within what the equipment has left."""
        if equipment == "frame" and amc > self.frame_left:
            amc = self.frame_left
            notes.append(f"capped by the contrat responsable frame limit {eur(self.frame_cap)}")
        if amc > self.equipment_left:
            amc = self.equipment_left
            notes.append(
                f"capped by the contrat responsable ceiling of a {self.label} equipment: "
                f"{eur(amc)} left"
            )
        return amc

    def consume(self, equipment: str, amc: int) -> None:
        """Count ``amc``, finally paid for one item, against the equipment's caps."""
        if equipment == "frame":
            self.frame_left -= amc
        self.equipment_left -= amc
