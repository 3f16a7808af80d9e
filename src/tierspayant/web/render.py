"""Rendering pages: one Jinja2 environment, the CSRF token in every form, French errors."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

from tierspayant.domain.errors import DomainError
from tierspayant.services.errors import ServiceError
from tierspayant.web.session import (
    CSRF_FIELD,
    CSRF_HEADER,
    Portal,
    current_session,
    keep_login_csrf,
    login_csrf,
)

PARIS = ZoneInfo("Europe/Paris")

# What a person can do about a refusal, in French; the code stays visible for support.
MESSAGES: dict[str, str] = {
    "auth.invalid_credentials": "Identifiant ou mot de passe incorrect.",
    "auth.mfa_failed": "Code de vérification refusé.",
    "auth.invalid_challenge": "Cette tentative de connexion a expiré : recommencez.",
    "auth.locked": "Trop d'échecs : le compte est bloqué pour quelques minutes.",
    "auth.suspended": "Ce compte est suspendu. Contactez votre administrateur.",
    "auth.session_expired": "Votre session a expiré : reconnectez-vous.",
    "auth.step_up_required": (
        "Vérification renforcée demandée : reconnectez-vous pour confirmer votre identité."
    ),
    "auth.unknown_professional": "Aucun professionnel enregistré ne correspond à cette identité.",
    "eligibility.identifiers_missing": "Indiquez le NIR avec le rang de naissance, ou le numéro "
    "d'adhérent.",
    "eligibility.birth_rank_missing": "Le rang de naissance est requis avec le NIR.",
    "eligibility.domains_missing": "Choisissez au moins un domaine de soins.",
    "card.proof_invalid": "Cette carte ne peut pas être acceptée.",
    "insurer.unknown": "Aucun organisme ne porte ce numéro AMC.",
    "calculation.no_rights": "Pas de droits complémentaires pour ces données à cette date.",
    "guard.suspended": "Votre accès est suspendu par mesure de sécurité.",
    "guard.human_speed": "Consultations trop rapides : votre accès est suspendu.",
    "guard.step_up_ignored": "Vérifications ignorées : votre accès est suspendu.",
    "guard.no_proof_quota": "Quota de consultations sans carte atteint pour aujourd'hui.",
    "guard.daily_cap": "Plafond quotidien de consultations atteint.",
    "guard.miss_ratio": "Trop de consultations sans correspondance : accès refusé.",
    "guard.rate": "Trop de consultations par minute : patientez.",
    "guard.second_approver_required": "Un second opérateur, différent, doit confirmer.",
    "principal.not_suspended": "Ce compte n'est pas suspendu.",
    "enrolment.no_catalogue": "Déposez d'abord un catalogue de garanties.",
    "claim.unknown": "Aucune facture de votre structure ne porte ce numéro.",
    "prior_auth.unknown": "Aucun accord de votre structure ne porte ce numéro.",
    "prior_auth.domain": "Ces soins ne relèvent pas d'un accord préalable.",
    "prior_auth.reason_required": "Indiquez le motif du refus.",
    "prior_auth.decided": "Cette demande a déjà été décidée.",
    "portal.file_missing": "Choisissez un fichier.",
    "portal.form": "Formulaire incomplet ou mal rempli.",
    "portal.amount": "Montant invalide : un montant positif en euros, avec au plus deux "
    "décimales (par exemple 12,50).",
    "portal.rate": "Taux invalide : un pourcentage de 0 à 100 (par exemple 70).",
    "claim.invoice_number": "Numéro de facture invalide : lettres, chiffres, « . _ / - », "
    "40 caractères au plus.",
    "claim.lines": "Une facture compte de 1 à 10 lignes.",
    "claim.act_code": "Code d'acte mal formé.",
    "claim.quantity": "La quantité est au moins 1.",
    "claim.negative": "Les montants ne peuvent pas être négatifs.",
    "claim.amo_rate": "Le taux AMO est compris entre 0 et 100 %.",
    "claim.number_reused": "Ce numéro de facture a déjà servi pour une autre facture.",
    "claim.cancelled": "Cette facture a été annulée.",
    "claim.insurer_changed": "Une correction ne peut pas changer d'organisme.",
    "eligibility.care_date_future": "La date des soins est trop loin dans le futur.",
    "eligibility.care_date_past": "La date des soins remonte à plus de deux ans.",
    "card.family_unknown": "Aucune carte ne peut être émise : pas de droits cette année.",
}


def french_message(error: ServiceError | DomainError) -> str:
    """The French text of a refusal (the service's English message is for logs and API)."""
    if error.code in MESSAGES:
        return MESSAGES[error.code]
    if error.code.startswith("nir") or error.code.startswith("identifier"):
        return "Identifiant mal formé : vérifiez la saisie."
    if error.code.startswith("guard."):
        return "Consultation refusée par les contrôles de sécurité."
    return "Demande refusée."


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
    page = (
        environment()
        .get_template(template)
        .render(
            request=request,
            portal=portal,
            session=info,
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


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"
