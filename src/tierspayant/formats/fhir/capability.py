"""The CapabilityStatement: exactly what the ``/fhir`` interface offers, nothing more.

:data:`RESOURCES` is the single list: the routes are declared from the same table's
meaning (``api/fhir/routes.py``) and the tests call every interaction it names and refuse
every search on every type it lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tierspayant.formats.fhir import systems

# resource type → (interactions, operations, who may use them)
RESOURCES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "CoverageEligibilityRequest": (("create",), (), "provider"),
    "Claim": ((), ("submit",), "provider"),
    "PaymentReconciliation": (("read",), (), "provider"),
    "ExplanationOfBenefit": (("search-type",), (), "member"),
    "Coverage": (("search-type",), (), "member"),
    "Task": (("create",), (), "provider"),
}
"""``search-type`` on ExplanationOfBenefit and Coverage is the member's own, without
parameters."""

DOCUMENTATION = {
    "CoverageEligibilityRequest": "Contrôle des droits (IDB) : "
    "réponse CoverageEligibilityResponse.",
    "Claim": "$submit : use = predetermination (calcul), preauthorization (accord préalable) "
    "ou claim (facture) ; réponse ClaimResponse.",
    "PaymentReconciliation": "Avis de paiement du professionnel, par son identifiant.",
    "ExplanationOfBenefit": "Relevé de l'assuré connecté : ses propres lignes payées, "
    "sans paramètre de recherche.",
    "Coverage": "Contrat de l'assuré connecté : le sien seulement, sans paramètre de recherche.",
    "Task": "code = cancel : annulation d'un engagement sur montants (focus.identifier = "
    "son numéro) ; réponse Task status = completed.",
}


def capability_statement(version: str, published: datetime) -> dict[str, Any]:
    resources = []
    for kind, (interactions, operations, _who) in RESOURCES.items():
        entry: dict[str, Any] = {"type": kind, "documentation": DOCUMENTATION[kind]}
        if interactions:
            entry["interaction"] = [{"code": code} for code in interactions]
        if operations:
            entry["operation"] = [
                {
                    "name": name,
                    "definition": f"http://hl7.org/fhir/OperationDefinition/{kind}-{name}",
                }
                for name in operations
            ]
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published.date().isoformat(),
        "kind": "instance",
        "software": {"name": "tierspayant", "version": version},
        "implementation": {"description": "Interface FHIR R4 du tiers payant"},
        "fhirVersion": systems.FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Pas de recherche de personnes : chaque demande porte les "
                "données lues sur la carte du patient.",
                "security": {
                    "description": "Jeton porteur (OAuth2 client credentials pour les logiciels "
                    "des professionnels, session du portail pour les assurés)."
                },
                "resource": resources,
            }
        ],
    }
