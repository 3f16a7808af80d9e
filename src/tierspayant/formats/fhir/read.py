"""Request resources in, plain values out: a ``CoverageEligibilityRequest``, a ``Claim`` or
a ``Task`` (cancellation of an engagement).

The body is parsed by the R4B model of ``fhir.resources`` (structure, cardinalities,
datatypes; a rights check first tries the lean models of :mod:`.lean`, which give the
same values or step aside), then the elements the platform needs are read and checked
here (value sets the models leave open: ``status``, ``purpose``, ``use``; the identifier
systems and extensions of :mod:`.systems`). A failure names the element, never its
value: values may be identifiers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from fhir.resources.R4B.claim import Claim, ClaimItem
from fhir.resources.R4B.coverageeligibilityrequest import CoverageEligibilityRequest
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from tierspayant.domain.care import CareDomain, Exemption
from tierspayant.domain.codes import FhirCode
from tierspayant.domain.errors import FhirInvalid, FhirUnreadable
from tierspayant.domain.pricing import RssClass
from tierspayant.formats import strict_json
from tierspayant.formats.fhir import lean, systems
from tierspayant.formats.strict_json import DuplicateJsonKey

R = TypeVar("R", bound=Resource)
USES = ("predetermination", "preauthorization", "claim")
# The QR code's proof, or the harmonised DataMatrix that embeds it (services/cards.py).
PROOF_PREFIXES = ("TP1:", "TPH1|")
_MAX_CENTS = 100_000_000
# The same bounds as the /v1 bodies (api/schemas.py, api/routes/*.py).
AMC = re.compile(r"[0-9]{8,10}")
NIR = re.compile(r"[0-9AB ]{15,21}")
MEMBER = re.compile(r"[0-9A-Za-z-]{1,20}")
INVOICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,39}")
REQUEST_KEY = re.compile(r"[A-Za-z0-9._:/-]{1,80}")
AGREEMENT = re.compile(r"[A-Z0-9]{1,24}")
# An engagement number, its length only: intake opens it (a bad one is
# ``engagement.invalid``, as on /v1).
ENGAGEMENT_PREFIX = "ENG1-"
ENGAGEMENT = re.compile(r"ENG1-\S{1,155}")
# A number to cancel, its length only: the service answers every number it cannot cancel
# (malformed, forged, another kind) with one 404, as DELETE /v1/engagements/{number}.
ENGAGEMENT_TO_CANCEL = re.compile(r"\S{1,160}")
CANCEL = "cancel"
ACT = re.compile(r"[A-Z0-9][A-Z0-9.+-]{0,12}")
FAMILY = re.compile(r"[a-z0-9_]{1,40}")


@dataclass(frozen=True, slots=True)
class Card:
    """What the patient's card shows, as the contained ``Patient`` carries it."""

    amc_number: str
    birth_date: date
    nir: str | None
    birth_rank: int | None
    member_number: str | None


@dataclass(frozen=True, slots=True)
class RightsAsk:
    card: Card
    care_date: date
    domains: tuple[CareDomain, ...]
    card_proof: str | None


@dataclass(frozen=True, slots=True)
class Item:
    """One ``Claim.item``; amounts in integer cents."""

    act_code: str
    domain: CareDomain
    family: str
    quantity: int
    care_date: date
    billed_cents: int
    br_cents: int
    amo_rate_bp: int | None
    amo_paid_cents: int | None
    amc_requested_cents: int | None
    exemption: Exemption
    in_care_pathway: bool
    rss_class: RssClass | None
    plv_cents: int | None
    psychiatry: bool


@dataclass(frozen=True, slots=True)
class ClaimAsk:
    use: str  # one of USES
    card: Card
    care_date: date
    identifier: str | None  # the invoice number (claim) or the request key (preauthorization)
    agreement_number: str | None
    maternity: bool
    card_proof: str | None
    items: tuple[Item, ...]
    # The first engagement number (``ENG1-R-…`` or ``ENG1-C-…``) among the
    # ``insurance.preAuthRef``: checked by intake as the ``engagement_number`` of /v1.
    engagement_number: str | None = None


def invalid(message: str, element: str | None = None) -> FhirInvalid:
    return FhirInvalid(FhirCode.INVALID, message, field=element)


def _document(body: bytes, expected: str) -> dict[str, Any]:
    """The JSON object of ``body``, of resource type ``expected``, or a refusal."""
    try:
        document = strict_json.loads(body)
    except DuplicateJsonKey:
        raise FhirUnreadable(FhirCode.DUPLICATE_KEY, "un objet JSON répète une clé") from None
    except (ValueError, RecursionError):
        raise FhirUnreadable(FhirCode.MALFORMED, "le corps n'est pas du JSON") from None
    if not isinstance(document, dict):
        raise FhirUnreadable(FhirCode.MALFORMED, "le corps n'est pas une ressource FHIR")
    if document.get("resourceType") != expected:
        raise FhirInvalid(
            FhirCode.WRONG_RESOURCE_TYPE,
            f"une ressource {expected} est attendue",
            field="resourceType",
        )
    return document


def load(body: bytes, model: type[R]) -> R:
    """Parse ``body`` as a resource of ``model``'s type (R4B), or refuse it."""
    return _validated(_document(body, model.get_resource_type()), model)


def _validated(document: dict[str, Any], model: type[R]) -> R:
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first.get("loc", ())) or None
        kind = "élément inconnu" if first.get("type") == "extra_forbidden" else "élément invalide"
        raise invalid(f"{kind} selon FHIR R4", where) from None
    except (ValueError, TypeError, LookupError, RecursionError):
        # LookupError: fhir.resources looks a contained resource's type up in a table (an
        # unknown type was a KeyError, answered 500).
        raise invalid("ressource invalide selon FHIR R4") from None


def _text(value: object, pattern: re.Pattern[str], element: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise invalid("valeur mal formée", element)
    return value


def _require(condition: bool, message: str, element: str) -> None:
    if not condition:
        raise invalid(message, element)


def _extensions(owner: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ext in getattr(owner, "extension", None) or ():
        found[str(ext.url)] = ext
    return found


def _code(concept: Any, system: str, element: str) -> str:
    for coding in getattr(concept, "coding", None) or ():
        if coding.system == system and coding.code:
            return str(coding.code)
    raise invalid(f"un code du système {system} est attendu", element)


def _identifier(reference: Any, system: str, element: str) -> str:
    ident = getattr(reference, "identifier", None)
    if ident is None or ident.system != system or not ident.value:
        raise invalid(f"un identifiant du système {system} est attendu", element)
    return str(ident.value)


def _cents(money: Any, element: str) -> int:
    _require(money is not None and money.value is not None, "montant manquant", element)
    _require(money.currency in (None, "EUR"), "les montants sont en euros (EUR)", element)
    try:
        value = Decimal(str(money.value))
    except InvalidOperation:
        raise invalid("montant invalide", element) from None
    cents = value * 100
    _require(cents == cents.to_integral_value(), "au plus deux décimales", element)
    _require(0 <= cents <= _MAX_CENTS, "montant hors bornes", element)
    return int(cents)


def _card_proof(resource: Any) -> str | None:
    ext = _extensions(resource).get(systems.CARD_PROOF)
    if ext is None:
        return None
    _require(isinstance(ext.valueString, str) and ext.valueString.startswith(PROOF_PREFIXES),
             "la preuve de carte est le texte du code 2D (TP1:… ou TPH1|…)",
             "extension")  # fmt: skip
    return str(ext.valueString)


def _patient(resource: Any) -> Patient | lean.Patient:
    reference = getattr(resource.patient, "reference", None)
    if not isinstance(reference, str) or not reference.startswith("#"):
        raise invalid("le patient est une ressource Patient contenue (#id)", "patient.reference")
    for contained in resource.contained or ():
        if isinstance(contained, Patient | lean.Patient) and contained.id == reference[1:]:
            return contained
    raise invalid("le patient référencé n'est pas contenu", "patient.reference")


def _card(resource: Any) -> Card:
    patient = _patient(resource)
    birth_date = patient.birthDate
    if birth_date is None:
        raise invalid("la date de naissance est obligatoire", "Patient.birthDate")
    amc = _text(
        _identifier(resource.insurer, systems.AMC_NUMBER, "insurer.identifier"),
        AMC,
        "insurer.identifier",
    )
    # The card's NIR identifies the beneficiary (insured NIR + birth rank). The patient's
    # own INS is read only when no card NIR came: for the insured person it is the same
    # number; for a child or a spouse it is another one, which no card carries, so it
    # never overrides the card.
    by_system: dict[str, tuple[str, int]] = {}
    member: str | None = None
    for ident in patient.identifier or ():
        if ident.system in (systems.NIR_CARD, systems.INS_NIR) and ident.value:
            if ident.system in by_system:
                raise invalid("un seul identifiant par système", "Patient.identifier")
            rank_ext = _extensions(ident).get(systems.BIRTH_RANK)
            if rank_ext is None or rank_ext.valuePositiveInt is None:
                raise invalid("le rang de naissance accompagne le NIR", "Patient.identifier")
            by_system[ident.system] = (
                _text(ident.value, NIR, "Patient.identifier"),
                int(rank_ext.valuePositiveInt),
            )
        elif ident.system == systems.MEMBER_NUMBER and ident.value:
            member = _text(ident.value, MEMBER, "Patient.identifier")
    chosen = by_system.get(systems.NIR_CARD) or by_system.get(systems.INS_NIR)
    nir, rank = (chosen[0], chosen[1]) if chosen is not None else (None, None)
    _require(nir is not None or member is not None,
             "le NIR et le rang, ou le numéro d'adhérent, sont attendus",
             "Patient.identifier")  # fmt: skip
    return Card(amc, birth_date, nir, rank, member)


def _domain(concept: Any, element: str) -> CareDomain:
    code = _code(concept, systems.CARE_DOMAIN, element)
    try:
        return CareDomain(code)
    except ValueError:
        raise invalid("domaine de soins inconnu", element) from None


def rights_ask(body: bytes) -> RightsAsk:
    """A ``CoverageEligibilityRequest`` (purpose ``benefits`` or ``validation``).

    The hot path: the lean models of :mod:`.lean` read the usual request; whatever they
    leave aside is read by the R4B model, so the answer is :func:`rights_ask_by_model`'s.
    """
    document = _document(body, "CoverageEligibilityRequest")
    request = lean.eligibility_request(body, document)
    return _rights_ask(
        request if request is not None else _validated(document, CoverageEligibilityRequest)
    )


def rights_ask_by_model(body: bytes) -> RightsAsk:
    """:func:`rights_ask` through the R4B model only (the reference the tests compare)."""
    return _rights_ask(load(body, CoverageEligibilityRequest))


def _rights_ask(request: Any) -> RightsAsk:
    _require(request.status == "active", "status doit valoir active", "status")
    purposes = set(request.purpose or ())
    _require(bool(purposes) and purposes <= {"benefits", "validation"},
             "purpose : benefits ou validation", "purpose")  # fmt: skip
    care_date = request.servicedDate
    if care_date is None:
        raise invalid("la date de soins (servicedDate) est attendue", "servicedDate")
    items = request.item or ()
    _require(0 < len(items) <= 13, "de 1 à 13 domaines de soins (item.category)", "item")
    domains = tuple(_domain(item.category, "item.category") for item in items)
    return RightsAsk(_card(request), care_date, domains, _card_proof(request))


def _enum(owner: dict[str, Any], url: str, kind: type[Any], element: str) -> Any:
    ext = owner.get(url)
    if ext is None:
        return None
    try:
        return kind(ext.valueCode)
    except ValueError:
        raise invalid("code inconnu", element) from None


def _flag(owner: dict[str, Any], url: str) -> bool:
    ext = owner.get(url)
    return bool(ext is not None and ext.valueBoolean)


def _item(item: ClaimItem, index: int, care_date: date) -> Item:
    where = f"item.{index}"
    ext = _extensions(item)
    family = ext.get(systems.ACT_FAMILY)
    if family is None:
        raise invalid("famille d'acte attendue", f"{where}.extension")
    br = ext.get(systems.BASE_AMOUNT)
    if br is None:
        raise invalid("base de remboursement (br) attendue", f"{where}.extension")
    rate = ext.get(systems.AMO_RATE)
    quantity = Decimal(1) if item.quantity is None else item.quantity.value
    if quantity is None or quantity != int(quantity) or not 1 <= quantity <= 999:
        raise invalid("quantité de 1 à 999", f"{where}.quantity")
    plv = ext.get(systems.PLV)
    amo_paid, amc_requested = ext.get(systems.AMO_PAID), ext.get(systems.AMC_REQUESTED)
    rate_bp = rate.valueInteger if rate is not None else None
    _require(rate_bp is None or 0 <= rate_bp <= 10_000, "taux AMO de 0 à 10000 points de base",
             f"{where}.extension")  # fmt: skip
    return Item(
        act_code=_text(
            _code(item.productOrService, systems.ACT_CODE, f"{where}.productOrService"),
            ACT,
            f"{where}.productOrService",
        ),
        domain=_domain(item.category, f"{where}.category"),
        family=_text(family.valueCode, FAMILY, f"{where}.extension"),
        quantity=int(quantity),
        care_date=item.servicedDate or care_date,
        billed_cents=_cents(item.net, f"{where}.net"),
        br_cents=_cents(br.valueMoney, f"{where}.extension"),
        amo_rate_bp=rate_bp,
        amo_paid_cents=_cents(amo_paid.valueMoney, f"{where}.extension") if amo_paid else None,
        amc_requested_cents=(
            _cents(amc_requested.valueMoney, f"{where}.extension") if amc_requested else None
        ),
        exemption=_enum(ext, systems.EXEMPTION, Exemption, f"{where}.extension") or Exemption.NONE,
        in_care_pathway=not _flag(ext, systems.OUT_OF_PATHWAY),
        rss_class=_enum(ext, systems.RSS_CLASS, RssClass, f"{where}.extension"),
        plv_cents=_cents(plv.valueMoney, f"{where}.extension") if plv else None,
        psychiatry=_flag(ext, systems.PSYCHIATRY),
    )


def _own_identifier(identifiers: Iterable[Any], system: str) -> str | None:
    for ident in identifiers:
        if ident.system == system and ident.value:
            return str(ident.value)
    return None


def claim_ask(body: bytes) -> ClaimAsk:
    """A ``Claim`` sent to ``$submit``: its ``use`` says which service answers it."""
    claim = load(body, Claim)
    if claim.use not in USES:
        raise FhirInvalid(
            FhirCode.UNSUPPORTED_USE,
            "use : predetermination, preauthorization ou claim",
            field="use",
        )
    _require(claim.status == "active", "status doit valoir active", "status")
    start = claim.billablePeriod.start if claim.billablePeriod is not None else None
    if start is None:
        raise invalid("la date de soins (billablePeriod.start) est attendue", "billablePeriod")
    care_date: date = start.date() if isinstance(start, datetime) else start
    items: Sequence[ClaimItem] = claim.item or ()
    _require(0 < len(items) <= 99, "de 1 à 99 lignes (item)", "item")
    agreement = engagement = None
    for insurance in claim.insurance or ():
        for ref in insurance.preAuthRef or ():
            if str(ref).startswith(ENGAGEMENT_PREFIX):
                engagement = engagement or _text(ref, ENGAGEMENT, "insurance.preAuthRef")
            else:
                agreement = _text(ref, AGREEMENT, "insurance.preAuthRef")
    identifier = _own_identifier(
        claim.identifier or (),
        systems.INVOICE_NUMBER if claim.use == "claim" else systems.REQUEST_KEY,
    )
    if identifier is not None:
        _text(identifier, INVOICE if claim.use == "claim" else REQUEST_KEY, "identifier")
    return ClaimAsk(
        use=str(claim.use),
        card=_card(claim),
        care_date=care_date,
        identifier=identifier,
        agreement_number=agreement,
        maternity=_flag(_extensions(claim), systems.MATERNITY),
        card_proof=_card_proof(claim),
        items=tuple(_item(item, n, care_date) for n, item in enumerate(items)),
        engagement_number=engagement,
    )


def cancellation(body: bytes) -> str:
    """A ``Task`` asking to cancel an engagement: ``code`` = ``cancel`` (FHIR's task-code),
    ``intent`` = ``order``, ``status`` = ``requested``; the number in ``focus.identifier``
    (system :data:`systems.ENGAGEMENT`)."""
    task = load(body, Task)
    codings = (task.code.coding if task.code is not None else None) or ()
    if not any(c.system == systems.TASK_CODE and c.code == CANCEL for c in codings):
        raise FhirInvalid(
            FhirCode.UNSUPPORTED_TASK,
            f"code : {CANCEL} ({systems.TASK_CODE}) seulement",
            field="code",
        )
    _require(task.intent == "order", "intent doit valoir order", "intent")
    _require(task.status == "requested", "status doit valoir requested", "status")
    number = _identifier(task.focus, systems.ENGAGEMENT, "focus.identifier")
    return _text(number, ENGAGEMENT_TO_CANCEL, "focus.identifier")
