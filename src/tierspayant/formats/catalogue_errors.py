"""The faults of a catalogue file located and said in French: the JSON path, the line of
the file when its text is known, and the offending value.

:func:`locate` adds ``details`` (``path``, ``line``, ``value``) to a
:class:`CatalogueError`; the code and the English message stay as they were for the API
and the logs. :func:`explain` writes the French sentence a person reads, for example
``ligne 14, contracts[0].guarantees[2].rate : un pourcentage de la BR comme "200" est
attendu (valeur « cent »)``. A catalogue holds no personal data: values are shown as
written, cut to 40 characters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import yaml

from tierspayant.domain.codes import CatalogueCode
from tierspayant.domain.errors import CatalogueError

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_SHOWN_CHARS: Final = 40
_KINDS: Final = ("un objet", "une liste", "vide")

# What the file should hold there, by the English wording of ``_Object._wrong``.
EXPECTED_FR: Final[Mapping[str, str]] = {
    "non-empty text": "un texte non vide",
    "true or false": "true ou false",
    "a whole number": "un nombre entier",
    'an amount in euros such as "12.50"': 'un montant en euros comme "12.50"',
    'a percentage of the BR such as "200"': 'un pourcentage de la BR comme "200"',
    "a non-empty object": "un objet non vide (des clés et leurs valeurs)",
    "a list": "une liste (éléments précédés de « - »)",
    'quoted text such as "01" (leading zeros count)': (
        'un texte entre guillemets comme "01" (les zéros de tête comptent)'
    ),
}

# Every code of a catalogue's format, in French (the contrat responsable rules have their
# own sentences in the portal).
REASONS_FR: Final[Mapping[str, str]] = {
    CatalogueCode.MALFORMED: "le fichier n'est pas du YAML ou du JSON lisible",
    CatalogueCode.UNSUPPORTED_FORMAT: 'format attendu : "tierspayant-catalogue/1"',
    CatalogueCode.BAD_INSURER: "numéro AMC attendu : 6 à 10 chiffres, entre guillemets",
    CatalogueCode.INSURER_MISMATCH: "ce catalogue concerne un autre organisme",
    CatalogueCode.NO_CONTRACTS: "le catalogue doit contenir au moins un contrat",
    CatalogueCode.BAD_COVERAGE_CODE: (
        "code de couverture attendu : 1 à 16 lettres, chiffres, espaces ou % + - _ ."
    ),
    CatalogueCode.BAD_CARD_ROUTING: (
        "type de convention ou critère secondaire de routage mal formé"
    ),
    CatalogueCode.BAD_PERIOD: (
        "période attendue : calendar_year, 12_months, 24_months ou 48_months"
    ),
    CatalogueCode.UNKNOWN_DOMAIN: "domaine de soins inconnu (PHAR, MED, DENT, OPTI…)",
    CatalogueCode.WRONG_TYPE: "valeur de type incorrect",
    CatalogueCode.UNKNOWN_KEY: "clé inconnue (faute de frappe ?)",
    CatalogueCode.MISSING_KEY: "clé obligatoire absente",
    CatalogueCode.NEGATIVE_NUMBER: "nombre négatif",
    CatalogueCode.NEGATIVE_AMOUNT: "montant négatif",
    CatalogueCode.TOO_MANY_DECIMALS: "plus de deux décimales",
    CatalogueCode.AMOUNT_TOO_LARGE: "montant invraisemblable (plus de 10 millions d'euros)",
    CatalogueCode.EMPTY_CEILING: "un plafond doit avoir un montant, un nombre d'actes, ou les deux",
    CatalogueCode.BAD_COUNT: "le nombre d'actes d'un plafond est au moins 1",
    CatalogueCode.BAD_COUNTER: "clé de compteur invalide (le préfixe amo est réservé)",
    CatalogueCode.BAD_FREQUENCY: "une fréquence de renouvellement est d'au moins un mois",
    CatalogueCode.BAD_AGE: "limite d'âge invalide",
    CatalogueCode.BAD_FAMILY: "nom de famille d'actes mal formé",
    CatalogueCode.EMPTY_GUARANTEE: (
        "une garantie a un taux, un forfait ou les frais réels (actual_costs)"
    ),
    CatalogueCode.CONFLICTING_FORMULA: ("une garantie aux frais réels n'a ni taux ni forfait"),
    CatalogueCode.BAD_RATE: "taux hors limites (de 0 à 1 000 % de la BR)",
    CatalogueCode.BAD_WAITING_PERIOD: "délai de carence négatif",
    CatalogueCode.BAD_CODE: "code de contrat mal formé",
    CatalogueCode.GUARANTEE_DOMAIN_NOT_COVERED: (
        "garantie d'un domaine de soins que le contrat ne liste pas dans domains"
    ),
    CatalogueCode.DUPLICATE_CONTRACT: "code de contrat en double",
    CatalogueCode.UNKNOWN_CONTRACT: "aucun contrat du catalogue ne porte ce code",
    CatalogueCode.UNKNOWN_FAMILY: "famille d'actes inconnue",
    CatalogueCode.FAMILY_DOMAIN_MISMATCH: (
        "cette famille d'actes ne se facture pas dans ce domaine de soins"
    ),
}


def _steps(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _STEP.findall(path)]


def value_at(document: Any, path: str | None) -> tuple[bool, Any]:
    """(found, value) of the decoded document at a JSON path such as ``contracts[0].code``."""
    node = document
    for step in _steps(path or ""):
        if isinstance(step, int):
            found = isinstance(node, list) and 0 <= step < len(node)
        else:
            found = isinstance(node, Mapping) and step in node
        if not found:
            return False, None
        node = node[step]
    return True, node


def line_of(text: str, path: str | None) -> int | None:
    """The 1-based line of the file where the value at ``path`` (or, if it is missing,
    its nearest parent) starts; None if the text cannot be read."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    if node is None:
        return None
    for step in _steps(path or ""):
        child = None
        if isinstance(node, yaml.SequenceNode) and isinstance(step, int):
            if 0 <= step < len(node.value):
                child = node.value[step]
        elif isinstance(node, yaml.MappingNode) and isinstance(step, str):
            for key, item in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == step:
                    child = item
                    break
        if child is None:
            break
        node = child
    return int(node.start_mark.line) + 1


def shown(value: Any) -> str:
    """A value of the file as a person reads it back: the text written, or its kind."""
    if isinstance(value, Mapping):
        return "un objet"
    if isinstance(value, list):
        return "une liste"
    if value is None:
        return "vide"
    text = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[:_SHOWN_CHARS]}…"


def locate(error: CatalogueError, document: Any, text: str | None = None) -> CatalogueError:
    """The same error with ``details``: ``path``, ``line`` (if ``text``), ``value``."""
    details: dict[str, str | int] = {"path": error.field or "(racine)"}
    if text is not None:
        line = line_of(text, error.field)
        if line is not None:
            details["line"] = line
    found, value = value_at(document, error.field)
    if found and error.code != CatalogueCode.MISSING_KEY:
        details["value"] = shown(value)
    located = CatalogueError(error.code, error.message, field=error.field, details=details)
    located.__cause__ = error.__cause__
    return located


def reason(error: CatalogueError) -> str:
    """What was expected there, in French."""
    if error.code == CatalogueCode.WRONG_TYPE:
        if error.message == "expected an object":
            return "un objet est attendu (des clés et leurs valeurs)"
        for english, french in EXPECTED_FR.items():
            if error.message.endswith(f"must be {english}"):
                return f"{french} est attendu"
    return REASONS_FR.get(error.code, "valeur refusée")


def explain(error: CatalogueError) -> str:
    """The error in French: line, JSON path, what was expected, the value found."""
    details = error.details
    where = []
    if "line" in details:
        where.append(f"ligne {details['line']}")
    if "column" in details:
        where.append(f"colonne {details['column']}")
    if "path" in details or not where:
        where.append(str(details.get("path", error.field or "(racine)")))
    text = f"{', '.join(where)} : {reason(error)}"
    value = details.get("value")
    if value in _KINDS:
        text += f" (trouvé : {value})"
    elif value is not None:
        text += f" (valeur « {value} »)"
    return text
