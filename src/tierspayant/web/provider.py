"""Provider portal: rights check, calculation, invoices, the professional's open
engagements on amounts (with cancellation) and the provider's conventions.

The pages call the very services the API calls (``check_rights``, ``calculate``,
``submit_claim``) with the session's principal, so the guard, the audit, idempotency and
the answer's contents are the same: a portal session gets what an API caller gets, no
more. There is no search and no list of people: every lookup starts from the data on the
patient's card.
"""

from __future__ import annotations

import re
import secrets
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from tierspayant.app.platform import Platform
from tierspayant.domain import labels
from tierspayant.domain.care import CareDomain
from tierspayant.domain.claims import ClaimContent, ClaimLine
from tierspayant.domain.codes import RequestCode
from tierspayant.domain.errors import DomainError
from tierspayant.domain.pricing import PricingLine, PricingResult
from tierspayant.formats import harmonised_card
from tierspayant.security.principal import Principal
from tierspayant.services import (
    bank_details,
    claims,
    delays,
    engagements,
    payment_returns,
    payments,
    portal_views,
    prior_auth,
)
from tierspayant.services.eligibility import RightsCheck, check_rights
from tierspayant.services.errors import ServiceError
from tierspayant.services.identification import CardData
from tierspayant.services.lookup import NO_PROOF, CardProof
from tierspayant.services.pricing import Calculation, calculate
from tierspayant.web import forms
from tierspayant.web.policy import policy
from tierspayant.web.render import french_message, is_htmx, render
from tierspayant.web.session import Form, Portal, PortalSession, csrf_protect, platform_of, requires


def new_request_key() -> str:
    """The idempotency key a prior-authorisation form carries: hex, so that it always has
    the form the service accepts (``token_urlsafe`` may start with ``-`` or ``_``, which it
    refuses: about one form in thirty failed)."""
    return secrets.token_hex(16)


PORTAL = Portal.PROVIDER
RULE = policy(PORTAL.rule)
DOMAINS = tuple(d.value for d in CareDomain)
MAX_PAYLOAD = 2000
MAX_INVOICE_LINES = 10
STATUSES = labels.CLAIM_STATUSES
# Where the claims service names a field, and the name of the form's input for it.
SERVICE_FIELD = re.compile(r"^lines\[(\d+)\](?:\.([a-z_]+))?$")
LINE_INPUTS = {
    "amo_rate_bp": "amo_rate",
    "billed_cents": "billed",
    "br_cents": "br",
    "amo_paid_cents": "amo_paid",
    "amc_requested_cents": "amc_requested",
}
# Inputs whose value is echoed back after a refusal: never the NIR nor the 2D code.
ECHOED = re.compile(
    r"^(invoice_number|correction|amc_number|birth_date|birth_rank|member_number|care_date|"
    r"agreement_number|(act_code|domain|family|quantity|br|billed|amo_rate|amo_paid|"
    r"amc_requested)_\d{1,2})$"
)
NOT_ECHOED = re.compile(r"^(nir|card_payload|line_\d{1,2})$")
Provider = Annotated[PortalSession, Depends(requires(PORTAL))]


def with_scan(form: FormData) -> FormData:
    """The form with what a scanned harmonised DataMatrix (``TPH1``) gives for the fields
    left empty: AMC number, member number, and the patient's birth date and rank when the
    card names one beneficiary (or one of that rank). The page's script does the same in
    the browser; this serves a browser without it. The code's signatures are checked by
    the lookup itself, like any card proof."""
    raw = form.get("card_payload")
    payload = raw.strip() if isinstance(raw, str) else ""
    if not payload.startswith("TPH1|"):
        return form
    try:
        card = harmonised_card.decode(payload).card
    except harmonised_card.Misread:
        return form  # answered as a misread by the lookup
    filled: dict[str, str] = {}
    if not form.get("amc_number"):
        filled["amc_number"] = card.amc_number
    if not form.get("member_number") and not form.get("nir"):
        filled["member_number"] = card.member_number
    if not form.get("birth_date"):
        rank = form.get("birth_rank")
        rows = [b for b in card.beneficiaries if not rank or str(b.rank) == rank]
        if len(rows) == 1:
            filled["birth_date"] = rows[0].birth_date.isoformat()
            filled["birth_rank"] = str(rows[0].rank)
    if not filled:
        return form
    kept = [(k, v) for k, v in form.multi_items() if k not in filled]
    return FormData([*kept, *filled.items()])


def card_from(form: FormData) -> CardData:
    """The card as typed or scanned (AMC number, birth date, NIR + rank or member number)."""
    form = with_scan(form)
    nir = forms.optional_text(form, "nir", max_length=21)
    return CardData(
        amc_number=forms.text(form, "amc_number", max_length=10),
        birth_date=forms.day(form, "birth_date"),
        nir=nir.replace(" ", "") if nir else None,
        birth_rank=forms.optional_integer(form, "birth_rank", low=1, high=9),
        member_number=forms.optional_text(form, "member_number", max_length=20),
    )


def line_from(form: FormData) -> PricingLine:
    """One act of the calculation and prior authorisation forms."""
    domains = forms.choices(form, "domain", frozenset(DOMAINS))
    if not domains:
        raise ServiceError(RequestCode.PORTAL_FORM, "domain is required", field="domain")
    return PricingLine(
        act_code=forms.text(form, "act_code", max_length=16).upper(),
        domain=CareDomain(domains[0]),
        family=forms.text(form, "family", max_length=40).lower(),
        quantity=forms.integer(form, "quantity", low=1, high=999, default=1),
        billed_cents=forms.cents(form, "billed") or 0,
        br_cents=forms.cents(form, "br") or 0,
    )


def new_invoice_number(day: date) -> str:
    """The number of an invoice made from a calculation (``PORTAIL-20260301-1a2b3c4d``):
    pre-filled, so that sending the same form again is a replay, not a second invoice."""
    return f"PORTAIL-{day:%Y%m%d}-{secrets.token_hex(4)}"


def invoice_of(result: PricingResult, invoice_number: str) -> ClaimContent:
    """The invoice of a calculation: its lines, the AMO figures it computed, the AMC it
    calculated as the amount requested, and its engagement on amounts."""
    return ClaimContent(
        invoice_number=invoice_number,
        care_date=result.care_date,
        engagement_number=result.engagement_number,
        lines=tuple(
            ClaimLine(
                act_code=line.act_code,
                domain=line.domain,
                family=line.family,
                quantity=line.quantity,
                care_date=result.care_date,
                br_cents=line.br_cents,
                billed_cents=line.billed_cents,
                amo_rate_bp=line.amo_rate_bp,
                amo_paid_cents=line.amo_paid_cents,
                amc_requested_cents=line.amc_cents,
            )
            for line in result.lines
        ),
    )


def proof_from(form: FormData) -> CardProof:
    """The scanned 2D code, if the reader typed one (checked by the lookup itself).

    Only line breaks a reader may append are removed: a space is a base45 character.
    """
    raw = form.get("card_payload")
    payload = raw.strip("\r\n") if isinstance(raw, str) else ""
    if len(payload) > MAX_PAYLOAD:
        raise ServiceError(RequestCode.PORTAL_FORM, "card_payload: too long", field="card_payload")
    return CardProof(payload) if payload else NO_PROOF


def invoice_line(form: FormData, row: int, care_date: date) -> ClaimLine:
    """Row ``row`` (from 1) of the invoice form; amounts in euros, the AMO rate in %."""
    domains = forms.choices(form, f"domain_{row}", frozenset(DOMAINS))
    if not domains:
        raise ServiceError(RequestCode.PORTAL_FORM, "domain is required", field=f"domain_{row}")
    return ClaimLine(
        act_code=forms.text(form, f"act_code_{row}", max_length=13).upper(),
        domain=CareDomain(domains[0]),
        family=forms.text(form, f"family_{row}", max_length=40).lower(),
        quantity=forms.integer(form, f"quantity_{row}", low=1, high=999, default=1),
        care_date=care_date,
        br_cents=forms.cents(form, f"br_{row}") or 0,
        billed_cents=forms.cents(form, f"billed_{row}") or 0,
        amo_rate_bp=forms.basis_points(form, f"amo_rate_{row}"),
        amo_paid_cents=forms.cents(form, f"amo_paid_{row}") or 0,
        amc_requested_cents=forms.cents(form, f"amc_requested_{row}") or 0,
    )


def invoice_from(form: FormData, care_date: date) -> claims.ClaimSubmission:
    """The invoice as the API route builds it from a JSON body (``api/routes/claims.py``)."""
    rows = forms.integer(form, "lignes", low=1, high=MAX_INVOICE_LINES, default=1)
    return claims.ClaimSubmission(
        card=card_from(form),
        content=ClaimContent(
            invoice_number=forms.text(form, "invoice_number", max_length=40),
            care_date=care_date,
            agreement_number=forms.optional_text(form, "agreement_number", max_length=24),
            lines=tuple(invoice_line(form, row, care_date) for row in range(1, rows + 1)),
        ),
        # « Corriger » (My rejects) sends the corrected invoice under the same number: it
        # supersedes the version in force, which is judged again.
        correction=form.get("correction") == "1",
    )


def echoed(form: FormData) -> dict[str, str]:
    """The fields a refused form may show again as typed (``ECHOED``: never the NIR)."""
    return {k: v for k, v in form.items() if isinstance(v, str) and ECHOED.match(k)}


def input_of(field: str | None) -> str | None:
    """The form input a refusal is about (``lines[0].amo_rate_bp`` → ``amo_rate_1``), or
    None when the form has no such input: the message is then shown above the form."""
    if field is None:
        return None
    found = SERVICE_FIELD.match(field)
    if found is None:
        name = field.removeprefix("card.")
    else:
        line_input = found[2] or "line"
        name = f"{LINE_INPUTS.get(line_input, line_input)}_{int(found[1]) + 1}"
    return name if ECHOED.match(name) or NOT_ECHOED.match(name) else None


def line_count(raw: object) -> int:
    """How many line rows the form shows (1 to 10; 1 for anything else)."""
    text = raw if isinstance(raw, str) else ""
    return min(int(text), MAX_INVOICE_LINES) if text.isdigit() and 0 < int(text) < 100 else 1


AMOUNT = re.compile(r"^(\d{1,9})(?:[.,](\d{1,2}))?$")
RUN_REFERENCE = re.compile(r"^(?:R|TP)(\d{4})(\d{2})(\d{2})(?:-\w*)?$")


def payment_search(
    since: str, until: str, amount: str, reference: str
) -> tuple[payments.PaymentSearch | None, dict[str, str]]:
    """The filters of « Mes paiements » (period, transfer amount in euros, the run by the
    reference of its transfer or advice); what is unreadable is left out, and the typed
    values come back for the form."""
    typed = {
        "du": since[:10],
        "au": until[:10],
        "montant": amount[:15],
        "reference": reference[:40],
    }

    def day(text: str) -> date | None:
        try:
            return date.fromisoformat(text) if text else None
        except ValueError:
            return None

    cents = None
    found = AMOUNT.match(amount.strip().replace("\u202f", "").replace(" ", ""))
    if found:
        cents = int(found[1]) * 100 + int((found[2] or "0").ljust(2, "0"))
    run = None
    matched = RUN_REFERENCE.match(reference.strip())
    if matched:
        run = day(f"{matched[1]}-{matched[2]}-{matched[3]}")
    search = payments.PaymentSearch(day(typed["du"]), day(typed["au"]), cents, run)
    return (None if search == payments.PaymentSearch() else search), typed


def remittance_advice_csv(platform: Platform, principal: Principal, advice_id: str) -> bytes:
    """One of the provider's advices as the payment run writes it, every line.

    ``payments.download_remittance`` checks the advice is the principal's (another
    provider's is NotFound, a 404) and audits the download.
    """
    return payments.download_remittance(platform, principal, advice_id, "csv")


def _page_or_fragment(request: Request, page: str, fragment: str, **context: Any) -> Response:
    template = fragment if is_htmx(request) else page
    return render(request, template, portal=PORTAL, **context)


def router() -> APIRouter:
    routes = APIRouter(prefix=PORTAL.root, dependencies=[Depends(csrf_protect)])

    @routes.get("/", **RULE)
    def home(request: Request, session: Provider) -> Response:
        return render(request, "provider/home.html", portal=PORTAL)

    @routes.get("/droits", **RULE)
    def rights_form(request: Request, session: Provider) -> Response:
        today = platform_of(request).today()
        return render(request, "provider/rights.html", portal=PORTAL, domains=DOMAINS, today=today)

    @routes.post("/droits", **RULE)
    def rights_check(request: Request, session: Provider, form: Form) -> Response:
        platform = platform_of(request)
        try:
            domains = forms.choices(form, "domains", frozenset(DOMAINS)) or DOMAINS
            check = RightsCheck(
                card_from(form),
                forms.day(form, "care_date", default=platform.today()),
                tuple(CareDomain(d) for d in domains),
            )
            answer = check_rights(platform, session.info.principal, check, proof_from(form))
        except DomainError as exc:
            # htmx swaps only the result, so the form stays as typed; a full page is
            # refilled (not the NIR, never echoed, nor the code to scan again).
            return _page_or_fragment(
                request,
                "provider/rights.html",
                "provider/_rights_result.html",
                error=french_message(exc),
                code=exc.code,
                domains=DOMAINS,
                today=platform.today(),
                values=echoed(form),
                checked=tuple(v for v in form.getlist("domains") if v in DOMAINS),
            )
        return _page_or_fragment(
            request,
            "provider/rights.html",
            "provider/_rights_result.html",
            answer=answer,
            domains=DOMAINS,
            today=platform.today(),
        )

    @routes.get("/calcul", **RULE)
    def calculation_form(request: Request, session: Provider) -> Response:
        today = platform_of(request).today()
        return render(request, "provider/calc.html", portal=PORTAL, domains=DOMAINS, today=today)

    @routes.post("/calcul", **RULE)
    def calculation(request: Request, session: Provider, form: Form) -> Response:
        platform = platform_of(request)
        try:
            line = line_from(form)
            request_ = Calculation(
                card_from(form), forms.day(form, "care_date", default=platform.today()), (line,)
            )
            result = calculate(platform, session.info.principal, request_, proof_from(form))
        except DomainError as exc:
            error = french_message(exc)
            return _page_or_fragment(
                request,
                "provider/calc.html",
                "provider/_calc_result.html",
                error=error,
                domains=DOMAINS,
                today=platform.today(),
            )
        return _page_or_fragment(
            request,
            "provider/calc.html",
            "provider/_calc_result.html",
            result=result,
            invoice_number=new_invoice_number(platform.today()),
            domains=DOMAINS,
            today=platform.today(),
        )

    @routes.post("/calcul/facture", **RULE)
    def calculation_invoice(request: Request, session: Provider, form: Form) -> Response:
        """« Facturer ce calcul »: the calculation is made again from the same card and
        line (the same professional's repeat answers the same engagement), and the invoice
        carries its figures; nothing the browser sends is taken as an amount."""
        platform, principal = platform_of(request), session.info.principal
        context: dict[str, Any] = {"domains": DOMAINS, "today": platform.today()}
        try:
            engaged = forms.text(form, "engagement_number", max_length=160)
            invoice_number = forms.text(form, "invoice_number", max_length=40)
            asked = Calculation(
                card_from(form),
                forms.day(form, "care_date", default=platform.today()),
                (line_from(form),),
            )
            proof = proof_from(form)
            result = calculate(platform, principal, asked, proof)
            if result.engagement_number != engaged:
                context["error"] = (
                    "Ce calcul n'est plus celui qui a été affiché : calculez à nouveau "
                    "avant de facturer."
                )
                return _page_or_fragment(
                    request, "provider/calc.html", "provider/_calc_result.html", **context
                )
            submission = claims.ClaimSubmission(asked.card, invoice_of(result, invoice_number))
            receipt = claims.submit_claim(platform, principal, submission, proof=proof)
        except DomainError as exc:
            context["error"] = french_message(exc)
            return _page_or_fragment(
                request, "provider/calc.html", "provider/_calc_result.html", **context
            )
        return _page_or_fragment(
            request,
            "provider/calc.html",
            "provider/_calc_result.html",
            receipt=receipt,
            engagement_number=engaged,
            statuses=STATUSES,
            **context,
        )

    @routes.get("/accords", **RULE)
    def prior_auth_form(request: Request, session: Provider) -> Response:
        today = platform_of(request).today()
        return render(
            request,
            "provider/prior_auth.html",
            portal=PORTAL,
            domains=DOMAINS,
            today=today,
            request_key=new_request_key(),
        )

    @routes.post("/accords", **RULE)
    def prior_auth_request(request: Request, session: Provider, form: Form) -> Response:
        platform = platform_of(request)
        context: dict[str, Any] = {
            "domains": DOMAINS,
            "today": platform.today(),
            "request_key": new_request_key(),
        }
        try:
            asked = prior_auth.PriorAuthRequest(
                card_from(form),
                forms.day(form, "care_date", default=platform.today()),
                forms.text(form, "request_key", max_length=80),
                (line_from(form),),
            )
            agreement, _ = prior_auth.request_prior_auth(
                platform, session.info.principal, asked, proof_from(form)
            )
        except DomainError as exc:
            return _page_or_fragment(
                request,
                "provider/prior_auth.html",
                "provider/_agreement.html",
                error=french_message(exc),
                code=exc.code,
                **context,
            )
        return _page_or_fragment(
            request,
            "provider/prior_auth.html",
            "provider/_agreement.html",
            agreement=agreement,
            **context,
        )

    def invoice_page(request: Request, rows: int, **context: Any) -> Response:
        return render(
            request,
            "provider/invoice.html",
            portal=PORTAL,
            domains=DOMAINS,
            today=platform_of(request).today(),
            rows=range(1, rows + 1),
            row_count=rows,
            max_rows=MAX_INVOICE_LINES,
            statuses=STATUSES,
            values=context.pop("values", {}),
            **context,
        )

    @routes.get("/factures", **RULE)
    def invoice_form(request: Request, session: Provider, lignes: str = "1") -> Response:
        return invoice_page(request, line_count(lignes))

    @routes.post("/factures", **RULE)
    def invoice_submit(request: Request, session: Provider, form: Form) -> Response:
        platform = platform_of(request)
        rows = line_count(form.get("lignes"))
        try:
            submission = invoice_from(form, forms.day(form, "care_date"))
            receipt = claims.submit_claim(
                platform, session.info.principal, submission, source="api", proof=proof_from(form)
            )
        except DomainError as exc:
            values = echoed(form)
            return invoice_page(
                request,
                rows,
                error=french_message(exc),
                code=exc.code,
                field_error=input_of(exc.field),
                values=values,
            )
        return invoice_page(request, rows, receipt=receipt)

    @routes.get("/paiements", **RULE)
    def payments_list(
        request: Request,
        session: Provider,
        du: str = "",
        au: str = "",
        montant: str = "",
        reference: str = "",
    ) -> Response:
        platform, principal = platform_of(request), session.info.principal
        search, typed = payment_search(du, au, montant, reference)
        rows = payments.list_remittances(platform, principal, search=search)
        returned = payment_returns.provider_returns(platform, principal)
        delay = delays.provider_delay(platform, principal)
        return render(
            request,
            "provider/payments.html",
            portal=PORTAL,
            rows=rows,
            returned=returned,
            delay=delay,
            search=typed,
            searched=search is not None,
        )

    def bank_page(request: Request, session: Provider, **context: Any) -> Response:
        platform = platform_of(request)
        view = bank_details.provider_view(platform, session.info.principal)
        return render(
            request,
            "provider/bank_details.html",
            portal=PORTAL,
            view=view,
            cooling_off_days=platform.settings.billing.bank_change_cooling_off_days,
            **context,
        )

    @routes.get("/coordonnees-bancaires", **RULE)
    def bank_form(request: Request, session: Provider) -> Response:
        return bank_page(request, session)

    @routes.post("/coordonnees-bancaires", **RULE)
    def bank_request(request: Request, session: Provider, form: Form) -> Response:
        iban = str(form.get("iban") or "")[:60]
        bic = str(form.get("bic") or "").strip()[:11] or None
        try:
            bank_details.request_change(platform_of(request), session.info.principal, iban, bic)
        except DomainError as exc:
            return bank_page(request, session, error=french_message(exc), code=exc.code)
        return bank_page(
            request,
            session,
            notice=(
                "Demande enregistrée. Vos virements restent versés sur le compte actuel "
                "jusqu'à sa vérification par une autre personne et la fin du délai de sécurité."
            ),
        )

    @routes.get("/paiements/{advice_id}/avis.csv", **RULE)
    def remittance_csv(request: Request, session: Provider, advice_id: str) -> Response:
        body = remittance_advice_csv(platform_of(request), session.info.principal, advice_id)
        # Only a well-formed id of the provider's own advice gets this far.
        headers = {"Content-Disposition": f'attachment; filename="avis-{advice_id}.csv"'}
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)

    @routes.get("/paiements/{advice_id}/avis.pdf", **RULE)
    def remittance_pdf(request: Request, session: Provider, advice_id: str) -> Response:
        body = payments.download_remittance(
            platform_of(request), session.info.principal, advice_id, "pdf"
        )
        headers = {"Content-Disposition": f'attachment; filename="avis-{advice_id}.pdf"'}
        return Response(body, media_type="application/pdf", headers=headers)

    def engagements_page(request: Request, session: Provider, **context: Any) -> Response:
        rows = engagements.provider_engagements(platform_of(request), session.info.principal)
        return _page_or_fragment(
            request,
            "provider/engagements.html",
            "provider/_engagements_list.html",
            rows=rows,
            **context,
        )

    @routes.get("/engagements", **RULE)
    def engagements_list(request: Request, session: Provider) -> Response:
        return engagements_page(request, session)

    @routes.post("/engagements/annuler", **RULE)
    def engagement_cancel(request: Request, session: Provider, form: Form) -> Response:
        number = str(form.get("number") or "").strip()[:200]
        try:
            engagements.cancel_amount(platform_of(request), session.info.principal, number)
        except ServiceError as exc:
            return engagements_page(request, session, error=french_message(exc))
        return engagements_page(
            request, session, notice="Engagement annulé : les montants réservés sont libérés."
        )

    @routes.get("/conventions", **RULE)
    def conventions(request: Request, session: Provider) -> Response:
        provider_id = session.info.principal.provider_id
        platform = platform_of(request)
        rows = (
            [] if provider_id is None else portal_views.provider_conventions(platform, provider_id)
        )
        return render(request, "provider/conventions.html", portal=PORTAL, rows=rows)

    return routes
