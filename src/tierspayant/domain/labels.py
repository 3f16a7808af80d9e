"""French labels of the platform's codes: one table for every place a person reads them.

Portals, PDFs, CSV exports, notices and the command line show a code through
:func:`label` (or :func:`labelled`, the label with its code), never raw. Machine formats
(SEPA, FHIR, the API, batch files) keep their codes. ``tests/unit/domain/test_labels.py``
checks that every value of the code enumerations, every act family of the reference rules,
every alert the guard can raise and every audited operation has its label, so a new code
cannot reach a screen without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from tierspayant.domain.adjudication import REASONS
from tierspayant.domain.care import CareDomain


class Kind(StrEnum):
    """The families of codes that have labels."""

    DOMAIN = "domain"
    FAMILY = "family"
    CLAIM_STATUS = "claim_status"
    LINE_STATUS = "line_status"
    PRIOR_AUTH_STATUS = "prior_auth_status"
    CARD_STATUS = "card_status"
    IMPORT_STATUS = "import_status"
    IMPORT_MODE = "import_mode"
    REASON = "reason"
    ALERT = "alert"
    OPERATION = "operation"
    PRINCIPAL_KIND = "principal_kind"
    PROVIDER_CATEGORY = "provider_category"
    CONTAINMENT_SCOPE = "containment_scope"
    CONTAINMENT_ROUTE = "containment_route"
    CEILING_PERIOD = "ceiling_period"
    UNDUE_REASON = "undue_reason"
    UNDUE_STATE = "undue_state"
    DISPUTE_STATE = "dispute_state"


DOMAINS: Final[Mapping[str, str]] = {
    CareDomain.PHAR: "Pharmacie",
    CareDomain.MED: "Médecins",
    CareDomain.LABO: "Laboratoires",
    CareDomain.RADIO: "Radiologie",
    CareDomain.AUXM: "Auxiliaires médicaux",
    CareDomain.DENT: "Dentaire",
    CareDomain.OPTI: "Optique",
    CareDomain.AUDI: "Audioprothèses",
    CareDomain.HOSP: "Hospitalisation",
    CareDomain.SAGE: "Sages-femmes",
    CareDomain.TRAN: "Transport",
    CareDomain.CSTE: "Centres de santé",
    CareDomain.EXTE: "Soins externes",
}

# The act families of the reference rules (reference/rules.json, ``families``).
FAMILIES: Final[Mapping[str, str]] = {
    "consultation": "Consultation de médecin",
    "specialist": "Consultation de spécialiste",
    "technical_act": "Acte technique",
    "imaging": "Imagerie",
    "lab_test": "Analyse de biologie",
    "nursing": "Soins infirmiers",
    "physiotherapy": "Kinésithérapie",
    "speech_therapy": "Orthophonie",
    "alternative_medicine": "Médecine douce",
    "midwife": "Acte de sage-femme",
    "dental_care": "Soins dentaires",
    "dental_prosthesis": "Prothèse dentaire",
    "orthodontics": "Orthodontie",
    "dental_implant": "Implant dentaire",
    "optics_frame": "Monture",
    "optics_lens_simple": "Verre simple",
    "optics_lens_complex": "Verre complexe",
    "optics_lens_very_complex": "Verre très complexe",
    "contact_lens": "Lentilles de contact",
    "refractive_surgery": "Chirurgie réfractive",
    "hearing_aid": "Aide auditive",
    "hearing_accessory": "Accessoire d'aide auditive",
    "drug_100": "Médicament remboursé à 100 %",
    "drug_65": "Médicament remboursé à 65 %",
    "drug_30": "Médicament remboursé à 30 %",
    "drug_15": "Médicament remboursé à 15 %",
    "medical_device": "Dispositif médical",
    "hospital_stay": "Séjour hospitalier",
    "hospital_fees": "Honoraires à l'hôpital",
    "hospital_daily_charge": "Forfait journalier hospitalier",
    "hospital_private_room": "Chambre particulière",
    "transport": "Transport sanitaire",
}

CLAIM_STATUSES: Final[Mapping[str, str]] = {
    "received": "reçue, en attente de traitement",
    "adjudicated": "traitée",
    "superseded": "remplacée par une correction",
    "cancelled": "annulée",
}

LINE_STATUSES: Final[Mapping[str, str]] = {
    "received": "reçue",
    "accepted": "acceptée",
    "reduced": "réduite",
    "rejected": "rejetée",
    "paid": "payée",
    "undue": "indue",
    "cancelled": "annulée",
}

PRIOR_AUTH_STATUSES: Final[Mapping[str, str]] = {
    "pending": "en attente de décision",
    "granted": "accordée",
    "refused": "refusée",
    "expired": "expirée",
}

CARD_STATUSES: Final[Mapping[str, str]] = {
    "active": "valide",
    "revoked": "révoquée",
    "superseded": "remplacée",
}

IMPORT_STATUSES: Final[Mapping[str, str]] = {
    "running": "en cours",
    "done": "terminé",
    "failed": "échoué",
    "refused": "refusé",
    "interrupted": "interrompu",
}

IMPORT_MODES: Final[Mapping[str, str]] = {
    "full": "complet",
    "incremental": "différentiel",
}

ALERTS: Final[Mapping[str, str]] = {
    "guard.suspended": "Compte suspendu",
    "guard.rate": "Trop de consultations par minute (compte)",
    "guard.structure_rate": "Trop de consultations par minute (structure)",
    "guard.global_rate": "Trop de consultations par minute (plateforme)",
    "guard.human_speed": "Consultations plus rapides qu'un humain",
    "guard.daily_cap": "Plafond quotidien de bénéficiaires atteint",
    "guard.daily_cap_soft": "Seuil quotidien de bénéficiaires approché",
    "guard.miss_ratio": "Trop de recherches sans résultat",
    "guard.miss_ratio_soft": "Part élevée de recherches sans résultat",
    "guard.misread_ratio": "Trop de lectures de carte illisibles",
    "guard.misread_ratio_soft": "Part élevée de lectures de carte illisibles",
    "guard.no_proof_quota": "Quota de consultations sans carte atteint",
    "guard.no_proof_soft": "Seuil de consultations sans carte approché",
    "guard.no_proof_watch": "Consultations sans carte à surveiller",
    "guard.invoice_ratio": "Consultations rarement suivies d'une facture",
    "guard.step_up_ignored": "Demandes de réauthentification ignorées",
    "guard.unbilled": "Trop de personnes consultées sans carte et jamais facturées (30 jours)",
    "guard.unbilled_soft": "Personnes consultées sans carte et non facturées : seuil approché",
    "guard.unbilled_pending": "Trop de personnes consultées sans carte en attente de facture",
    "guard.reservations": "Trop d'engagements sur montants dans la journée",
    "guard.reservations_soft": "Nombre élevé d'engagements sur montants dans la journée",
    "guard.canary": "Bénéficiaire leurre consulté",
    "guard.proof_forged": "Carte falsifiée présentée",
    "guard.proof_revoked": "Carte révoquée présentée",
    "guard.proof_mismatch": "Carte présentée pour une personne hors de la famille",
    "guard.proof_misread": "Carte illisible",
    "guard.unavailable": "Compteurs de sécurité indisponibles",
    "guard.store_unavailable": "Compteurs de sécurité indisponibles",
    "guard.history_unavailable": "Historique de la structure indisponible",
    "canary.touched": "Bénéficiaire leurre consulté",
}

OPERATIONS: Final[Mapping[str, str]] = {
    "eligibility.check": "Vérification de droits",
    "calculation": "Calcul de prise en charge",
    "prior_auth.request": "Demande d'accord préalable",
    "prior_auth.decide": "Décision sur un accord préalable",
    "claim.receive": "Réception d'une facture",
    "claim.cancel": "Annulation d'une facture",
    "claim.dispute": "Contestation d'une ligne de facture",
    "claim.dispute_answer": "Réponse à une contestation",
    "claims.import": "Import d'un lot de factures",
    "claims.adjudicate": "Traitement des factures",
    "engagement.cancel": "Annulation d'un engagement",
    "lookup.refused": "Consultation refusée",
    "card.issue": "Émission d'une carte de tiers payant",
    "card.revoke": "Révocation d'une carte",
    "card.decode_refused": "Lecture de carte refusée",
    "card.proof_refused": "Carte refusée",
    "card.proof_misread": "Carte illisible",
    "card.key_rotate": "Changement de clé de signature des cartes",
    "member.statement": "Consultation d'un relevé",
    "member.consultations": "Consultation de l'historique",
    "member.data_export": "Export des données personnelles",
    "member.cards": "Consultation des cartes",
    "member.coverage": "Consultation du contrat",
    "member.guarantees": "Consultation des garanties",
    "auth.login": "Connexion",
    "auth.logout": "Déconnexion",
    "auth.logout_everywhere": "Déconnexion de toutes les sessions",
    "auth.step_up": "Réauthentification",
    "guard.step_up_satisfied": "Réauthentification forte effectuée",
    "auth.token": "Jeton d'accès délivré",
    "payments.run": "Paiement des professionnels",
    "payments.backdate": "Paiement à une date passée (dérogation)",
    "payments.return": "Virement retourné par la banque du professionnel",
    "bank_details.request": "Changement de coordonnées bancaires demandé",
    "bank_details.verify": "Changement de coordonnées bancaires vérifié",
    "bank_details.refuse": "Changement de coordonnées bancaires refusé",
    "containment.propose": "Confinement proposé",
    "containment.approve": "Confinement approuvé",
    "containment.lift_propose": "Levée de confinement proposée",
    "containment.lift": "Confinement levé",
    "billing.run": "Appel de fonds des organismes",
    "scheduler.job": "Tâche planifiée exécutée",
    "billing.return": "Rejet de prélèvement",
    "billing.returns": "Import de rejets de prélèvement",
    "billing.download": "Téléchargement d'un relevé",
    "billing.fee_set": "Tarif de gestion fixé",
    "overpayment.flag": "Indu signalé",
    "incident.scope": "Périmètre d'incident calculé",
    "incident.reveal": "Identités d'un incident révélées",
    "incident.download": "Fichier d'incident téléchargé",
    "incident.revoke": "Révocation après incident",
    "breakglass.request": "Demande d'accès exceptionnel",
    "breakglass.approve": "Accès exceptionnel approuvé",
    "breakglass.reveal": "Accès exceptionnel utilisé",
    "breakglass.close": "Accès exceptionnel clos",
    "principal.suspend": "Compte suspendu",
    "principal.reinstate": "Compte rétabli",
    "principal.reinstate_request": "Rétablissement demandé (premier opérateur)",
    "principal.revoke": "Accès révoqués",
    "suspend": "Compte suspendu",
    "canary.plant": "Bénéficiaires leurres posés",
    "canary.touched": "Bénéficiaire leurre consulté",
    "catalogue.upload": "Catalogue de garanties chargé",
    "convention.add": "Convention ajoutée",
    "provider.add": "Professionnel ajouté",
    "provider.import": "Import de professionnels",
    "takeover.import": "Reprise des consommations d'un organisme",
    "insurer.add": "Organisme ajouté",
    "insurer.prior_auth_read": "Accord préalable consulté par l'organisme",
    "insurer.claim_search": "Recherche de factures par l'organisme",
    "insurer.claim_read": "Facture consultée par l'organisme",
    "mandate.set": "Mandat de prélèvement enregistré",
    "client.issue": "Accès logiciel délivré",
    "account.create": "Compte créé",
    "account.disable": "Compte désactivé",
    "account.unlock": "Compte déverrouillé",
    "account.demo_reset": "Identifiants de démonstration renouvelés",
    "account.mfa_enrol": "Second facteur enregistré",
    "account.recovery_codes": "Codes de secours renouvelés",
    "keys.rotate_data": "Changement de clé de données",
    "keys.rewrap": "Clés de données rechiffrées",
    "keys.retire_kek": "Ancienne clé maîtresse retirée",
    "keys.export": "Clés exportées pour la sauvegarde (chiffrées par phrase secrète)",
    "retention.purge": "Purge des données échues",
}

PRINCIPAL_KINDS: Final[Mapping[str, str]] = {
    "provider_client": "logiciel de professionnel",
    "provider_user": "professionnel (portail)",
    "insurer_staff": "personnel d'organisme",
    "operator_staff": "personnel de l'opérateur",
    "member": "adhérent",
    # Principals that are not accounts (store.read_models.principal_names).
    "provider": "professionnel",
    "provider_file": "dépôt de fichiers du professionnel",
    "system": "contrôles automatiques de la plateforme",
    "unknown_client": "logiciel non reconnu",
    "unknown": "compte inconnu",
}

# What a containment switch covers (domain.containment.ScopeKind).
CONTAINMENT_SCOPES: Final[Mapping[str, str]] = {
    "platform": "toute la plateforme",
    "insurer": "un organisme (numéro AMC)",
    "structure": "une structure (FINESS, SIRET ou numéro AM)",
    "category": "une catégorie de professionnels",
    "route": "un type de consultation",
}

# The routes a containment switch may cover (domain.containment.Route).
CONTAINMENT_ROUTES: Final[Mapping[str, str]] = {
    "eligibility": "vérifications de droits",
    "calculation": "calculs de prise en charge",
    "prior_auth": "demandes d'accord préalable",
    "claims": "factures",
}

# The windows of a contract's ceilings (domain.guarantees.Period), as the member's
# guarantees page writes them after an amount: "1 000,00 € par année civile".
CEILING_PERIODS: Final[Mapping[str, str]] = {
    "calendar_year": "par année civile",
    "12_months": "sur 12 mois glissants",
    "24_months": "sur 24 mois glissants",
    "48_months": "sur 48 mois glissants",
}

# The kinds of providers of the directory (domain.providers.ProviderCategory); the guard's
# caps and the containment switches are set per category too.
PROVIDER_CATEGORIES: Final[Mapping[str, str]] = {
    "pharmacy": "Pharmacie",
    "gp": "Médecin généraliste",
    "specialist": "Médecin spécialiste",
    "dentist": "Chirurgien-dentiste",
    "laboratory": "Laboratoire d'analyses",
    "radiology": "Cabinet de radiologie",
    "optician": "Opticien",
    "audiologist": "Audioprothésiste",
    "nurse": "Infirmier",
    "physiotherapist": "Masseur-kinésithérapeute",
    "midwife": "Sage-femme",
    "ambulance": "Transport sanitaire",
    "health_centre": "Centre de santé",
    "hospital": "Établissement de santé",
}

# Why a paid line was declared undue (overpayments.reason_code). The claims officer picks
# one of the first ones in the portal; a correction of a paid invoice writes the last.
UNDUE_REASONS: Final[Mapping[str, str]] = {
    "rights.ended": "Droits fermés à la date des soins",
    "care.not_given": "Soins non réalisés",
    "claim.duplicate": "Facture déjà payée (doublon)",
    "amount.wrong": "Montant pris en charge erroné",
    "beneficiary.wrong": "Bénéficiaire erroné",
    "claim.corrected": "Facture corrigée après paiement",
}

# Where the recovery of an undue amount stands (services.insurer_money.UndueState).
UNDUE_STATES: Final[Mapping[str, str]] = {
    "to_recover": "à recouvrer",
    "partial": "recouvré partiellement",
    "recovered": "recouvré",
}

# The states of a provider's dispute of a decided line (store.disputes_tables).
DISPUTE_STATES: Final[Mapping[str, str]] = {
    "open": "en attente de réponse",
    "accepted": "acceptée",
    "refused": "refusée",
}

# What the provider can do about a rejected or reduced line, by reason (the portal's
# « Mes rejets » page); a reason without advice gets ``ADVICE_DEFAULT``.
ADVICE_DEFAULT: Final = (
    "Vérifiez la facture : si elle comporte une erreur, envoyez-la corrigée ; "
    "sinon, contestez la décision."
)
REASON_ADVICE: Final[Mapping[str, str]] = {
    "rights.none": "Vérifiez la carte et la date des soins, puis envoyez la facture corrigée.",
    "rights.domain_not_covered": "Le contrat ne couvre pas ce domaine : facturez le patient.",
    "act.unknown": "Corrigez le code d'acte ou le domaine de soins et renvoyez la facture.",
    "amounts.amo_above_rate": "Corrigez la part AMO (base × taux) et renvoyez la facture.",
    "amounts.amc_above_cost": "Corrigez la part complémentaire demandée et renvoyez la facture.",
    "amounts.inconsistent": "Corrigez les montants et renvoyez la facture.",
    "prior_auth.missing": "Demandez un accord préalable, puis renvoyez la facture avec son numéro.",
    "prior_auth.not_found": "Corrigez le numéro d'accord préalable et renvoyez la facture.",
    "duplicate.same_provider": "Cette facture a déjà été prise en charge : rien à renvoyer.",
    "ceiling.reached": "Le plafond est atteint : le reste est à la charge du patient.",
    "amount.above_guarantee": "Le reste au-delà de la garantie est à la charge du patient.",
    "claim.unprocessable": "Envoyez la facture corrigée.",
}

_TABLES: Final[Mapping[Kind, Mapping[str, str]]] = MappingProxyType(
    {
        Kind.DOMAIN: DOMAINS,
        Kind.FAMILY: FAMILIES,
        Kind.CLAIM_STATUS: CLAIM_STATUSES,
        Kind.LINE_STATUS: LINE_STATUSES,
        Kind.PRIOR_AUTH_STATUS: PRIOR_AUTH_STATUSES,
        Kind.CARD_STATUS: CARD_STATUSES,
        Kind.IMPORT_STATUS: IMPORT_STATUSES,
        Kind.IMPORT_MODE: IMPORT_MODES,
        Kind.REASON: {
            **{str(code): text for code, text in REASONS.items()},
            "prior_auth.refused_by_insurer": "Refusé par l'organisme complémentaire",
        },
        Kind.ALERT: ALERTS,
        Kind.OPERATION: OPERATIONS,
        Kind.PRINCIPAL_KIND: PRINCIPAL_KINDS,
        Kind.PROVIDER_CATEGORY: PROVIDER_CATEGORIES,
        Kind.CONTAINMENT_SCOPE: CONTAINMENT_SCOPES,
        Kind.CONTAINMENT_ROUTE: CONTAINMENT_ROUTES,
        Kind.CEILING_PERIOD: CEILING_PERIODS,
        Kind.UNDUE_REASON: UNDUE_REASONS,
        Kind.UNDUE_STATE: UNDUE_STATES,
        Kind.DISPUTE_STATE: DISPUTE_STATES,
    }
)


def label(kind: Kind | str, code: object) -> str:
    """The French label of ``code``, or the code itself if the table has none (so an
    unforeseen value still shows, and the tests catch the missing label)."""
    text = str(code.value if isinstance(code, StrEnum) else code)
    return _TABLES[Kind(kind)].get(text, text)


def labelled(kind: Kind | str, code: object) -> str:
    """The label followed by its code, for screens where staff need both."""
    text = str(code.value if isinstance(code, StrEnum) else code)
    name = label(kind, text)
    return text if name == text else f"{name} ({text})"


def advice(reason: str | None) -> str:
    """What the provider can do about a line refused or reduced for ``reason``."""
    return REASON_ADVICE.get(reason or "", ADVICE_DEFAULT)


def table(kind: Kind | str) -> Mapping[str, str]:
    """Every label of one kind (lists in forms, legends of charts)."""
    return _TABLES[Kind(kind)]
