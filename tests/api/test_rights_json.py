"""The rights check's answer written directly is the bytes the models give.

``api.json_body.rights_json`` writes the answer without building ``EligibilityOut``;
whatever the answer holds, it must give the bytes ``model_dump_json`` gives (engagement
number left out when absent), or decline (None) so that the models write it.
"""

from __future__ import annotations

from datetime import date

import pytest

from tierspayant.api.json_body import rights_json
from tierspayant.api.schemas import DomainRightOut, EligibilityOut
from tierspayant.domain.care import CareDomain
from tierspayant.domain.eligibility import DomainRight


def _by_models(care: date, rights: list[DomainRight], number: str | None) -> bytes:
    out = EligibilityOut(
        care_date=care,
        rights=[
            DomainRightOut(
                domain=r.domain,
                covered=r.covered,
                tiers_payant=r.tiers_payant,
                coverage_code=r.coverage_code,
                valid_until=r.valid_until,
            )
            for r in rights
        ],
        engagement_number=number,
    )
    return out.model_dump_json(exclude=None if number else {"engagement_number"}).encode()


CASES = [
    (date(2026, 12, 7), [], None),
    (
        date(2026, 1, 31),
        [
            DomainRight(CareDomain.PHAR, True, True, "PH100", None),
            DomainRight(CareDomain.MED, False, False, None, date(2026, 2, 28)),
        ],
        "ENG1-R-AAAAAAOHOGQBJWXGOINRRHT32V3AJKZXWTUHDOFJRELA4",
    ),
    (
        date(999, 3, 4),
        [DomainRight(d, True, False, "A-1.2/3:+ x_y", date(2030, 12, 31)) for d in CareDomain],
        None,
    ),
]


@pytest.mark.parametrize(("care", "rights", "number"), CASES)
def test_given_an_answer_then_the_written_bytes_are_the_models_bytes(
    care: date, rights: list[DomainRight], number: str | None
) -> None:
    assert rights_json(care, rights, number) == _by_models(care, rights, number)


@pytest.mark.parametrize("code", ['PH"100', "é100", "PH\\1", "a\nb", "<script>"])
def test_given_a_text_that_needs_escaping_then_the_models_write_it(code: str) -> None:
    rights = [DomainRight(CareDomain.PHAR, True, True, code, None)]
    assert rights_json(date(2026, 12, 7), rights, None) is None
    assert rights_json(date(2026, 12, 7), [], code) is None
