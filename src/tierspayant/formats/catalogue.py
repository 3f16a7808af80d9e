"""The guarantee catalogue file of an insurer: YAML or JSON, documented in
``docs/formats/catalogue.md``.

Parsing is strict: unknown keys, wrong types, unknown care domains, negative amounts and
amounts with more than two decimals are refused with a :class:`CatalogueError` whose
``field`` says where (``contracts[1].guarantees[3].rate``). Amounts are euros (``"12.50"``
or ``12.5``), rates are percentages of the BR including the AMO share (``"200"``).
:func:`dump_catalogue` writes the canonical form back; ``parse(dump(c)) == c``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tierspayant.domain.care import CareDomain
from tierspayant.domain.codes import CatalogueCode
from tierspayant.domain.errors import CatalogueError
from tierspayant.domain.guarantees import (
    CardRouting,
    Catalogue,
    Ceiling,
    Contract,
    DomainTerms,
    Frequency,
    Guarantee,
    InsurerContact,
    Period,
)
from tierspayant.formats.catalogue_errors import locate

CATALOGUE_FORMAT = "tierspayant-catalogue/1"
_AMC_NUMBER = re.compile(r"^[0-9]{6,10}$")
_COVERAGE_CODE = re.compile(r"^[A-Za-z0-9 %+\-_.]{1,16}$")
_MAX_AMOUNT_CENTS = 10**9  # ten million euros: beyond, a typo
_T = TypeVar("_T")

_ROOT_KEYS = frozenset({"format", "insurer", "name", "version", "card", "contact", "contracts"})
_CARD_KEYS = frozenset({"convention_type", "routing_criterion"})
_CONTACT_KEYS = frozenset({"name", "phone", "email", "address"})
_CONTRACT_KEYS = frozenset(
    {
        "code",
        "label",
        "responsable",
        "hundred_percent_sante",
        "covers_participation",
        "covers_franchises",
        "covers_hors_parcours",
        "domains",
        "guarantees",
    }
)
_TERMS_KEYS = frozenset({"tiers_payant", "coverage_code"})
_GUARANTEE_KEYS = frozenset(
    {
        "domain",
        "family",
        "label",
        "rate",
        "rate_non_optam",
        "flat",
        "actual_costs",
        "ceilings",
        "waiting_days",
        "min_age",
        "max_age",
        "frequency",
    }
)
_FREQUENCY_KEYS = frozenset({"key", "months", "months_young", "young_age"})
_CEILING_KEYS = frozenset({"counter", "period", "amount", "count", "includes_tm"})

__all__ = [
    "CATALOGUE_FORMAT",
    "dump_catalogue",
    "dump_catalogue_yaml",
    "load_text",
    "parse_catalogue",
    "read_catalogue",
]


def read_catalogue(path: Path) -> Catalogue:
    """Read and parse a catalogue file (``.yaml``, ``.yml`` or ``.json``)."""
    return parse_catalogue(path.read_text(encoding="utf-8"))


def parse_catalogue(document: Mapping[str, Any] | str) -> Catalogue:
    """Parse a catalogue from its text (YAML or JSON) or its decoded mapping.

    A refusal carries ``details`` (:func:`catalogue_errors.locate`): the JSON path, the
    line of the text when it was given, and the offending value.
    """
    text = None
    if isinstance(document, str):
        text = document
        document = load_text(text)
    try:
        return _parse(document)
    except CatalogueError as exc:
        raise locate(exc, document, text) from exc


def load_text(text: str) -> Any:
    """The decoded document of a catalogue's text; a syntax error names its line and
    column (``catalogue.malformed``)."""
    try:
        # JSON is (nearly) a subset of YAML: one reader for both.
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        details: dict[str, str | int] = {}
        if mark is not None:
            details = {"line": int(mark.line) + 1, "column": int(mark.column) + 1}
        raise CatalogueError(
            CatalogueCode.MALFORMED,
            f"not valid YAML or JSON: {exc}".splitlines()[0],
            details=details,
        ) from exc


def _parse(document: Any) -> Catalogue:
    root = _Object(document, "", _ROOT_KEYS)
    fmt = root.optional_text("format")
    if fmt is not None and fmt != CATALOGUE_FORMAT:
        raise CatalogueError(
            CatalogueCode.UNSUPPORTED_FORMAT,
            f"format {fmt!r} is not {CATALOGUE_FORMAT!r}",
            field="format",
        )
    insurer = root.text("insurer")
    if not _AMC_NUMBER.match(insurer):
        raise CatalogueError(
            CatalogueCode.BAD_INSURER,
            "insurer must be the AMC number: 6 to 10 digits, quoted",
            field="insurer",
        )
    name = root.optional_text("name") or ""
    version = root.text("version")
    contracts = tuple(
        _contract(_Object(raw, at, _CONTRACT_KEYS))
        for at, raw in root.items_of("contracts", required=True)
    )
    if not contracts:
        raise CatalogueError(CatalogueCode.NO_CONTRACTS, "a catalogue needs a contract")
    card = None
    if root.has("card"):
        block = _Object(root.raw("card"), "card.", _CARD_KEYS)
        card = _build(
            CardRouting,
            block.at,
            convention_type=block.optional_code("convention_type") or "",
            routing_criterion=block.optional_code("routing_criterion") or "",
        )
    contact = None
    if root.has("contact"):
        block = _Object(root.raw("contact"), "contact.", _CONTACT_KEYS)
        contact = _build(
            InsurerContact,
            block.at,
            **{key: block.optional_text(key) or "" for key in sorted(_CONTACT_KEYS)},
        )
    return _build(
        Catalogue,
        "",
        insurer=insurer,
        version=version,
        contracts=contracts,
        name=name,
        card=card,
        contact=contact,
    )


def _contract(obj: _Object) -> Contract:
    code = obj.text("code")
    label = obj.text("label")
    responsable = obj.flag("responsable", required=True)
    domains: dict[CareDomain, DomainTerms] = {}
    raw_domains = obj.mapping("domains")
    for key, value in raw_domains.items():
        domain = _domain(key, f"{obj.at}domains.{key}")
        terms = _Object(value, f"{obj.at}domains.{key}.", _TERMS_KEYS)
        domains[domain] = DomainTerms(
            tiers_payant=terms.flag("tiers_payant", required=True),
            coverage_code=terms.text("coverage_code"),
        )
        if not _COVERAGE_CODE.match(domains[domain].coverage_code):
            raise CatalogueError(
                CatalogueCode.BAD_COVERAGE_CODE,
                "a coverage code is 1 to 16 letters, digits, spaces or % + - _ .",
                field=f"{obj.at}domains.{key}.coverage_code",
            )
    guarantees = tuple(
        _guarantee(_Object(raw, at, _GUARANTEE_KEYS))
        for at, raw in obj.items_of("guarantees", required=True)
    )
    contract = _build(
        Contract,
        obj.at,
        code=code,
        label=label,
        responsable=responsable,
        domains=domains,
        guarantees=guarantees,
        hundred_percent_sante=obj.flag("hundred_percent_sante", default=True),
        covers_participation=obj.flag("covers_participation"),
        covers_franchises=obj.flag("covers_franchises"),
        covers_hors_parcours=obj.flag("covers_hors_parcours"),
    )
    return contract


def _guarantee(obj: _Object) -> Guarantee:
    domain = _domain(obj.text("domain"), f"{obj.at}domain")
    frequency = None
    if obj.has("frequency"):
        freq = _Object(obj.raw("frequency"), f"{obj.at}frequency.", _FREQUENCY_KEYS)
        frequency = _build(
            Frequency,
            freq.at,
            key=freq.text("key"),
            months=freq.integer("months"),
            months_young=freq.optional_integer("months_young"),
            young_age=freq.optional_integer("young_age") or 16,
        )
    ceilings = []
    for at, raw in obj.items_of("ceilings", required=False):
        ceiling = _Object(raw, at, _CEILING_KEYS)
        period_text = ceiling.text("period")
        try:
            period = Period(period_text)
        except ValueError:
            allowed = ", ".join(p.value for p in Period)
            raise CatalogueError(
                CatalogueCode.BAD_PERIOD,
                f"period must be one of {allowed}",
                field=f"{ceiling.at}period",
            ) from None
        ceilings.append(
            _build(
                Ceiling,
                ceiling.at,
                counter=ceiling.text("counter"),
                period=period,
                amount_cents=ceiling.amount("amount"),
                count=ceiling.optional_integer("count"),
                includes_tm=ceiling.flag("includes_tm"),
            )
        )
    guarantee = _build(
        Guarantee,
        obj.at,
        domain=domain,
        family=obj.text("family"),
        rate_bp=obj.rate("rate"),
        rate_non_optam_bp=obj.rate("rate_non_optam"),
        flat_cents=obj.amount("flat"),
        actual_costs=obj.flag("actual_costs"),
        ceilings=tuple(ceilings),
        waiting_days=obj.optional_integer("waiting_days") or 0,
        min_age=obj.optional_integer("min_age"),
        max_age=obj.optional_integer("max_age"),
        frequency=frequency,
        label=obj.optional_text("label") or "",
    )
    return guarantee


def _build(cls: type[_T], at: str, **values: Any) -> _T:
    """Construct a domain value, locating the invariant it breaks in the file."""
    try:
        return cls(**values)
    except CatalogueError as exc:
        where = at.rstrip(".")
        if exc.field:
            where = f"{at}{exc.field}"
        raise CatalogueError(exc.code, exc.message, field=where or None) from exc


def _domain(value: str, where: str) -> CareDomain:
    try:
        return CareDomain(value)
    except ValueError:
        raise CatalogueError(
            CatalogueCode.UNKNOWN_DOMAIN,
            f"unknown care domain {value!r}: one of {', '.join(d.value for d in CareDomain)}",
            field=where,
        ) from None


class _Object:
    """A mapping of the file being read, with its location, handing out typed values."""

    def __init__(self, raw: Any, at: str, allowed: frozenset[str]) -> None:
        if not isinstance(raw, Mapping):
            raise CatalogueError(
                CatalogueCode.WRONG_TYPE, "expected an object", field=at.rstrip(".") or None
            )
        for key in raw:
            if not isinstance(key, str):
                raise CatalogueError(
                    CatalogueCode.WRONG_TYPE, f"key {key!r} is not text", field=at or None
                )
        # A misspelt key must not be silently ignored: refuse it before anything else.
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise CatalogueError(
                CatalogueCode.UNKNOWN_KEY, f"unknown key {unknown[0]!r}", field=f"{at}{unknown[0]}"
            )
        self._raw: Mapping[str, Any] = raw
        self.at = at

    def has(self, key: str) -> bool:
        return self._raw.get(key) is not None

    def raw(self, key: str) -> Any:
        return self._raw.get(key)

    def _required(self, key: str) -> Any:
        value = self._raw.get(key)
        if value is None:
            raise CatalogueError(
                CatalogueCode.MISSING_KEY, f"{key} is required", field=f"{self.at}{key}"
            )
        return value

    def _wrong(self, key: str, expected: str) -> CatalogueError:
        return CatalogueError(
            CatalogueCode.WRONG_TYPE, f"{key} must be {expected}", field=f"{self.at}{key}"
        )

    def text(self, key: str) -> str:
        return self._text(key, self._required(key))

    def optional_text(self, key: str) -> str | None:
        value = self._raw.get(key)
        return None if value is None else self._text(key, value)

    def optional_code(self, key: str) -> str | None:
        """Text, or digits written as a YAML number by mistake (``routing_criterion: 1``
        would lose leading zeros: it must be quoted)."""
        value = self._raw.get(key)
        if value is None:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            raise self._wrong(key, 'quoted text such as "01" (leading zeros count)')
        return self._text(key, value)

    def _text(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self._wrong(key, "non-empty text")
        return value.strip()

    def flag(self, key: str, required: bool = False, default: bool = False) -> bool:
        value = self._required(key) if required else self._raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def integer(self, key: str) -> int:
        return self._integer(key, self._required(key))

    def optional_integer(self, key: str) -> int | None:
        value = self._raw.get(key)
        return None if value is None else self._integer(key, value)

    def _integer(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "a whole number")
        if value < 0:
            raise CatalogueError(
                CatalogueCode.NEGATIVE_NUMBER, f"{key} may not be negative", field=f"{self.at}{key}"
            )
        return value

    def _decimal(self, key: str, what: str) -> Decimal | None:
        value = self._raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise self._wrong(key, what)
        try:
            # A YAML 12.5 arrives as a float: its shortest repr is the number written.
            number = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise self._wrong(key, what) from None
        if not number.is_finite():
            raise self._wrong(key, what)
        if number < 0:
            raise CatalogueError(
                CatalogueCode.NEGATIVE_AMOUNT, f"{key} may not be negative", field=f"{self.at}{key}"
            )
        if number != number.quantize(Decimal("0.01")):
            raise CatalogueError(
                CatalogueCode.TOO_MANY_DECIMALS,
                f"{key} has more than two decimals",
                field=f"{self.at}{key}",
            )
        return number

    def amount(self, key: str) -> int | None:
        number = self._decimal(key, 'an amount in euros such as "12.50"')
        if number is None:
            return None
        cents = int(number * 100)
        if cents > _MAX_AMOUNT_CENTS:
            raise CatalogueError(
                CatalogueCode.AMOUNT_TOO_LARGE,
                f"{key} is implausibly large",
                field=f"{self.at}{key}",
            )
        return cents

    def rate(self, key: str) -> int | None:
        number = self._decimal(key, 'a percentage of the BR such as "200"')
        return None if number is None else int(number * 100)

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self._required(key)
        if not isinstance(value, Mapping) or not value:
            raise self._wrong(key, "a non-empty object")
        return value

    def items_of(self, key: str, required: bool) -> list[tuple[str, Any]]:
        value = self._required(key) if required else self._raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(key, "a list")
        return [(f"{self.at}{key}[{i}].", item) for i, item in enumerate(value)]


# --- writing ---------------------------------------------------------------------------


def _euros(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _percent(bp: int) -> str:
    whole, part = divmod(bp, 100)
    return str(whole) if part == 0 else f"{whole}.{part:02d}".rstrip("0")


def dump_catalogue(catalogue: Catalogue) -> dict[str, Any]:
    """The canonical mapping of ``catalogue`` (defaults left out, amounts as strings)."""
    out: dict[str, Any] = {"format": CATALOGUE_FORMAT, "insurer": catalogue.insurer}
    if catalogue.name:
        out["name"] = catalogue.name
    out["version"] = catalogue.version
    if catalogue.card is not None:
        card: dict[str, str] = {}
        if catalogue.card.convention_type:
            card["convention_type"] = catalogue.card.convention_type
        if catalogue.card.routing_criterion:
            card["routing_criterion"] = catalogue.card.routing_criterion
        out["card"] = card
    if catalogue.contact is not None:
        contact = catalogue.contact
        out["contact"] = {
            key: value
            for key, value in (
                ("name", contact.name),
                ("phone", contact.phone),
                ("email", contact.email),
                ("address", contact.address),
            )
            if value
        }
    out["contracts"] = [_dump_contract(c) for c in catalogue.contracts]
    return out


def dump_catalogue_yaml(catalogue: Catalogue) -> str:
    """The canonical form as YAML text."""
    return yaml.safe_dump(dump_catalogue(catalogue), sort_keys=False, allow_unicode=True)


def _dump_contract(contract: Contract) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": contract.code,
        "label": contract.label,
        "responsable": contract.responsable,
    }
    if not contract.hundred_percent_sante:
        out["hundred_percent_sante"] = False
    for key in ("covers_participation", "covers_franchises", "covers_hors_parcours"):
        if getattr(contract, key):
            out[key] = True
    out["domains"] = {
        str(domain): {"tiers_payant": terms.tiers_payant, "coverage_code": terms.coverage_code}
        for domain, terms in contract.domains.items()
    }
    out["guarantees"] = [_dump_guarantee(g) for g in contract.guarantees]
    return out


def _dump_guarantee(guarantee: Guarantee) -> dict[str, Any]:
    out: dict[str, Any] = {"domain": str(guarantee.domain), "family": guarantee.family}
    if guarantee.label:
        out["label"] = guarantee.label
    if guarantee.rate_bp is not None:
        out["rate"] = _percent(guarantee.rate_bp)
    if guarantee.rate_non_optam_bp is not None:
        out["rate_non_optam"] = _percent(guarantee.rate_non_optam_bp)
    if guarantee.flat_cents is not None:
        out["flat"] = _euros(guarantee.flat_cents)
    if guarantee.actual_costs:
        out["actual_costs"] = True
    if guarantee.waiting_days:
        out["waiting_days"] = guarantee.waiting_days
    if guarantee.min_age is not None:
        out["min_age"] = guarantee.min_age
    if guarantee.max_age is not None:
        out["max_age"] = guarantee.max_age
    if guarantee.frequency is not None:
        frequency: dict[str, Any] = {
            "key": guarantee.frequency.key,
            "months": guarantee.frequency.months,
        }
        if guarantee.frequency.months_young is not None:
            frequency["months_young"] = guarantee.frequency.months_young
        if guarantee.frequency.young_age != 16:
            frequency["young_age"] = guarantee.frequency.young_age
        out["frequency"] = frequency
    if guarantee.ceilings:
        ceilings = []
        for ceiling in guarantee.ceilings:
            item: dict[str, Any] = {"counter": ceiling.counter, "period": str(ceiling.period)}
            if ceiling.amount_cents is not None:
                item["amount"] = _euros(ceiling.amount_cents)
            if ceiling.count is not None:
                item["count"] = ceiling.count
            if ceiling.includes_tm:
                item["includes_tm"] = True
            ceilings.append(item)
        out["ceilings"] = ceilings
    return out
