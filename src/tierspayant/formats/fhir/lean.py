"""Lean models of a ``CoverageEligibilityRequest``: only the elements a rights check reads.

Parsing every rights check through the R4B models of ``fhir.resources`` cost about
780 µs, most of a FHIR rights check. These models read the usual request (the one
``docs/fhir.md`` shows) at a fraction of that, and decide nothing on their own: they
accept a document only if the R4B model would accept it with the same values, and
otherwise step aside (:func:`eligibility_request` returns None) so that the caller
parses it with the R4B model as before. So every answer, refusals included, is the one
the R4B model gives (``tests/unit/formats/test_fhir_lean.py`` compares both).

How "the same values" is kept: the primitives are ``fhir_core``'s own types (the ones
the R4B models use: the same patterns and conversions); every object forbids the
elements it does not list, and every list has at least one entry; a body with
``null`` anywhere steps aside. Anything else FHIR allows (``meta``, ``identifier``,
``provider``, other extension values…) is left to the R4B model, not ignored unchecked.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fhir_core.types import (
    CodeType,
    DateTimeType,
    DateType,
    IdType,
    PositiveIntType,
    StringType,
    UriType,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

_SOME = Field(min_length=1)  # a JSON array has at least one entry in FHIR


class _Lean(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RankExtension(_Lean):
    url: UriType
    valuePositiveInt: PositiveIntType


class ProofExtension(_Lean):
    url: UriType
    valueString: StringType


class Identifier(_Lean):
    system: UriType
    value: StringType
    extension: Annotated[tuple[RankExtension, ...], _SOME] | None = None


class Reference(_Lean):
    reference: StringType | None = None
    identifier: Identifier | None = None
    display: StringType | None = None


class Coding(_Lean):
    system: UriType
    code: CodeType
    display: StringType | None = None


class Concept(_Lean):
    coding: Annotated[tuple[Coding, ...], _SOME]


class Item(_Lean):
    category: Concept


class Patient(_Lean):
    resourceType: Literal["Patient"]
    id: IdType
    identifier: Annotated[tuple[Identifier, ...], _SOME]
    birthDate: DateType


class CoverageEligibilityRequest(_Lean):
    resourceType: Literal["CoverageEligibilityRequest"]
    id: IdType | None = None
    extension: Annotated[tuple[ProofExtension, ...], _SOME] | None = None
    contained: Annotated[tuple[Patient, ...], _SOME]
    status: CodeType
    purpose: Annotated[tuple[CodeType, ...], _SOME]
    patient: Reference
    servicedDate: DateType | None = None
    created: DateTimeType
    insurer: Reference
    item: Annotated[tuple[Item, ...], _SOME] | None = None


def eligibility_request(body: bytes, document: dict[str, Any]) -> CoverageEligibilityRequest | None:
    """The lean reading of ``document`` (parsed from ``body``), or None: then the R4B
    model must read it. A body with ``null`` anywhere (FHIR JSON has none; even inside a
    text) is left to the model: one scan of the bytes instead of a check of every
    object, since an optional element here would take a ``null`` as absent."""
    if b"null" in body:
        return None
    try:
        return CoverageEligibilityRequest.model_validate(document)
    except (ValidationError, ValueError, TypeError, RecursionError):
        return None
