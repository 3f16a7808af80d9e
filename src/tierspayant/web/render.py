"""Rendering pages: one Jinja2 environment, the CSRF token in every form, French errors."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from tierspayant.domain import labels
from tierspayant.domain.codes import (
    AuthCode,
    CalculationCode,
    CardCode,
    ClaimCode,
    DirectoryCode,
    EligibilityCode,
    EngagementCode,
    EnrolmentCode,
    GuardCode,
    IncidentCode,
    PriorAuthCode,
    RequestCode,
)
from tierspayant.domain.containment import REFUSALS_FR
from tierspayant.domain.errors import DomainError
from tierspayant.domain.messages import french_sentence
from tierspayant.services import portal_views
from tierspayant.services.errors import ServiceError
from tierspayant.web import explain
from tierspayant.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    Portal,
    current_session,
    keep_login_csrf,
    login_csrf,
    platform_of,
)

PARIS = ZoneInfo("Europe/Paris")

# What a person can do about a refusal, in French; the code stays visible for support.
MESSAGES: dict[str, str] = {
    AuthCode.INVALID_CREDENTIALS: "Identifiant ou mot de passe incorrect.",
    EngagementCode.NOT_FOUND: "Engagement introuvable.",
    AuthCode.MFA_FAILED: "Code de vérification refusé.",
    AuthCode.INVALID_CHALLENGE: "Cette tentative de connexion a expiré : recommencez.",
    AuthCode.LOCKED: "Trop d'échecs : le compte est bloqué pour quelques minutes.",
    AuthCode.SUSPENDED: "Ce compte est suspendu. Contactez votre administrateur.",
    AuthCode.SESSION_EXPIRED: "Votre session a expiré : reconnectez-vous.",
    AuthCode.STEP_UP_REQUIRED: (
        "Vérification renforcée demandée : reconnectez-vous pour confirmer votre identité."
    ),
    AuthCode.UNKNOWN_PROFESSIONAL: "Aucun professionnel enregistré ne correspond à cette identité.",
    EligibilityCode.IDENTIFIERS_MISSING: "Indiquez le NIR avec le rang de naissance, ou le numéro "
    "d'adhérent.",
    EligibilityCode.BIRTH_RANK_MISSING: "Le rang de naissance est requis avec le NIR.",
    EligibilityCode.DOMAINS_MISSING: "Choisissez au moins un domaine de soins.",
    CardCode.PROOF_INVALID: "Cette carte ne peut pas être acceptée.",
    CardCode.MISREAD: "Code mal lu : vérifiez la disposition du clavier du lecteur "
    "(AZERTY/QWERTY) et scannez à nouveau.",
    DirectoryCode.INSURER_UNKNOWN: "Aucun organisme ne porte ce numéro AMC.",
    CalculationCode.CALCULATION_NO_RIGHTS: (
        "Pas de droits complémentaires pour ces données à cette date."
    ),
    GuardCode.SUSPENDED: "Votre accès est suspendu par mesure de sécurité.",
    GuardCode.HUMAN_SPEED: "Consultations trop rapides : votre accès est suspendu.",
    GuardCode.STEP_UP_IGNORED: "Vérifications ignorées : votre accès est suspendu.",
    GuardCode.NO_PROOF_QUOTA: "Quota de consultations sans carte atteint pour aujourd'hui.",
    GuardCode.UNBILLED: (
        "Trop de patients consultés sans carte n'ont jamais été facturés : "
        "votre accès est suspendu."
    ),
    GuardCode.UNBILLED_PENDING: (
        "Trop de patients consultés sans carte attendent encore leur facture : scannez la carte."
    ),
    GuardCode.DAILY_CAP: "Plafond quotidien de consultations atteint.",
    GuardCode.MISS_RATIO: "Trop de consultations sans correspondance : accès refusé.",
    GuardCode.RATE: "Trop de consultations par minute : patientez.",
    GuardCode.SECOND_APPROVER_REQUIRED: "Un second opérateur, différent, doit confirmer.",
    IncidentCode.PRINCIPAL_NOT_SUSPENDED: "Ce compte n'est pas suspendu.",
    IncidentCode.PRINCIPAL_NOT_FOUND: "Aucun compte ne porte cet identifiant.",
    IncidentCode.ALERT_NOT_FOUND: "Cette alerte n'existe pas.",
    EnrolmentCode.NO_CATALOGUE: "Déposez d'abord un catalogue de garanties.",
    ClaimCode.UNKNOWN: "Aucune facture de votre structure ne porte ce numéro.",
    ClaimCode.DISPUTE_LINE: (
        "Seule une ligne rejetée ou réduite d'une facture traitée peut être contestée."
    ),
    ClaimCode.DISPUTE_TEXT: "Expliquez votre demande (1000 caractères au plus).",
    ClaimCode.DISPUTE_UNKNOWN: "Aucune contestation de votre organisme ne porte ce numéro.",
    ClaimCode.DISPUTE_ANSWERED: "Cette contestation a déjà reçu une réponse.",
    PriorAuthCode.UNKNOWN: "Aucun accord de votre structure ne porte ce numéro.",
    PriorAuthCode.DOMAIN: "Ces soins ne relèvent pas d'un accord préalable.",
    PriorAuthCode.REASON_REQUIRED: "Indiquez le motif du refus.",
    PriorAuthCode.DECIDED: "Cette demande a déjà été décidée.",
    RequestCode.PORTAL_FILE_MISSING: "Choisissez un fichier.",
    RequestCode.PORTAL_FORM: "Formulaire incomplet ou mal rempli.",
    RequestCode.PORTAL_AMOUNT: "Montant invalide : un montant positif en euros, avec au plus deux "
    "décimales (par exemple 12,50).",
    RequestCode.PORTAL_RATE: "Taux invalide : un pourcentage de 0 à 100 (par exemple 70).",
    ClaimCode.INVOICE_NUMBER: "Numéro de facture invalide : lettres, chiffres, « . _ / - », "
    "40 caractères au plus.",
    ClaimCode.LINES: "Une facture compte de 1 à 10 lignes.",
    ClaimCode.ACT_CODE: "Code d'acte mal formé.",
    ClaimCode.QUANTITY: "La quantité va de 1 à 999.",
    ClaimCode.NEGATIVE: "Les montants ne peuvent pas être négatifs.",
    ClaimCode.AMO_RATE: "Le taux AMO est compris entre 0 et 100 %.",
    ClaimCode.LINE_CEILING: "Montant de ligne au-dessus du plafond de son domaine de soins.",
    ClaimCode.INVOICE_CEILING: "Montant de facture au-dessus du plafond de son domaine de soins.",
    ClaimCode.NUMBER_REUSED: "Ce numéro de facture a déjà servi pour une autre facture.",
    ClaimCode.CANCELLED: "Cette facture a été annulée.",
    ClaimCode.INSURER_CHANGED: "Une correction ne peut pas changer d'organisme.",
    EligibilityCode.CARE_DATE_FUTURE: "La date des soins est trop loin dans le futur.",
    EligibilityCode.CARE_DATE_PAST: "La date des soins remonte à plus de deux ans.",
    CardCode.FAMILY_UNKNOWN: "Aucune carte ne peut être émise : pas de droits cette année.",
    **REFUSALS_FR,
    DirectoryCode.BANK_CHANGE_PENDING: (
        "Un changement de coordonnées bancaires attend déjà sa vérification."
    ),
    DirectoryCode.BANK_CHANGE_SAME_PERSON: (
        "La personne qui a demandé le changement ne peut pas le vérifier."
    ),
    DirectoryCode.BANK_CHANGE_CLOSED: "Ce changement n'attend plus de vérification.",
    DirectoryCode.BANK_CHANGE_METHOD: "Vérification : second_person ou provider_contact.",
}


def refusal_status(request: Request, error: DomainError) -> int:
    """The HTTP status of a refusal page: the API's, from its one table.

    The portals sit below the API and do not import it; the API hands its mapping to the
    application it builds (``api.errors.install_error_handlers``). Without it, 422.
    """
    status_of = getattr(request.app.state, "http_status", None)
    return 422 if status_of is None else int(status_of(error))


def french_message(error: ServiceError | DomainError) -> str:
    """The French text of a refusal (the service's English message is for logs and API)."""
    if error.code in MESSAGES:
        return MESSAGES[error.code]
    if error.code.startswith("nir") or error.code.startswith("identifier"):
        return "Identifiant mal formé : vérifiez la saisie."
    if error.code.startswith("guard."):
        return "Consultation refusée par les contrôles de sécurité."
    return french_sentence(error.code) or "Demande refusée."


def euros(cents: int) -> str:
    """``1234`` → ``12,34 €`` (French format, from integer cents without float)."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    grouped = f"{whole:,}".replace(",", "\u202f")
    return f"{sign}{grouped},{part:02d}\u00a0€"


def local_time(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def french_date(day: date | None) -> str:
    return "—" if day is None else day.strftime("%d/%m/%Y")


def french_week(week: str) -> str:
    """An ISO week (``2026-W44``) as a French reader writes it: ``semaine 44 (2026)``."""
    year, _, number = week.partition("-W")
    return f"semaine {int(number)} ({year})" if number.isdigit() else week


@cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("tierspayant.web", "templates"),
        autoescape=select_autoescape(["html", "svg"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["euros"] = euros
    env.filters["local_time"] = local_time
    env.filters["french_date"] = french_date
    env.filters["french_week"] = french_week
    # French labels of codes (domain/labels.py): {{ r.domain | label("domain") }}.
    env.filters["label"] = lambda code, kind: labels.label(kind, code)
    env.filters["labelled"] = lambda code, kind: labels.labelled(kind, code)
    env.globals["families"] = labels.FAMILIES  # the act families, for the forms' lists
    env.globals["explained"] = explain.explained  # a calculation's explanation, in French
    env.globals["ceilings_fr"] = explain.ceilings
    return env


def render(
    request: Request,
    template: str,
    *,
    portal: Portal | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page (or an htmx fragment), with the CSRF token every form needs."""
    info = current_session(request)
    csrf = info.csrf_token if info is not None else login_csrf(request)
    who = None
    if info is not None and portal is not None and info.principal.kind is portal.kind:
        who = portal_views.who(platform_of(request), info.account_id)
    page = (
        environment()
        .get_template(template)
        .render(
            request=request,
            portal=portal,
            session=info,
            who=who,
            csrf=csrf,
            csrf_field=CSRF_FIELD,
            csrf_header=CSRF_HEADER,
            **context,
        )
    )
    response = HTMLResponse(page, status_code=status_code)
    response.headers["cache-control"] = "no-store"
    keep_login_csrf(request, response)
    return response


def unavailable_page(request: Request, code: str, retry_after: int) -> HTMLResponse:
    """The 503 page of a database that is busy or lost its connection: rendered without
    the database (no session, no header names), which may be the very thing down."""
    page = (
        environment()
        .get_template("error.html")
        .render(
            request=request,
            portal=None,
            session=None,
            who=None,
            csrf="",
            csrf_field=CSRF_FIELD,
            csrf_header=CSRF_HEADER,
            title="Service indisponible",
            message=french_sentence(code) or "Service momentanément indisponible.",
            code=code,
        )
    )
    response = HTMLResponse(page, status_code=503)
    response.headers["cache-control"] = "no-store"
    response.headers["retry-after"] = str(retry_after)
    return response


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
