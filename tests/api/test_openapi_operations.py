"""The API's operations: the same methods, paths and operation ids, whatever module holds
them. Provider software generates its client from the OpenAPI document: moving a route
between modules must not change it (an operation id is the route function's name and
its path). A new or changed route updates this list, on purpose."""

from __future__ import annotations

from pathlib import Path

from tierspayant.api.app import create_app
from tierspayant.api.deps import POLICY_KEY
from tierspayant.app.platform import initialise
from tierspayant.config import load_settings

OPERATIONS = (
    ("GET", "/healthz", "healthz_healthz_get"),
    ("GET", "/readyz", "readyz_readyz_get"),
    ("GET", "/metrics", "metrics_exposition_metrics_get"),
    ("POST", "/v1/oauth/token", "token_v1_oauth_token_post"),
    ("POST", "/v1/eligibility", "eligibility_v1_eligibility_post"),
    ("POST", "/v1/calculations", "calculation_v1_calculations_post"),
    ("DELETE", "/v1/engagements/{number}", "cancel_engagement_v1_engagements__number__delete"),
    ("POST", "/v1/prior-authorisations", "post_prior_authorisation_v1_prior_authorisations_post"),
    (
        "GET",
        "/v1/prior-authorisations/{agreement}",
        "read_prior_authorisation_v1_prior_authorisations__agreement__get",
    ),
    (
        "POST",
        "/v1/prior-authorisations/{agreement}/decision",
        "decide_prior_authorisation_v1_prior_authorisations__agreement__decision_post",
    ),
    ("POST", "/v1/claims", "post_claim_v1_claims_post"),
    ("GET", "/v1/claims/{claim_id}", "read_claim_v1_claims__claim_id__get"),
    ("POST", "/v1/claims/{claim_id}/cancellation", "cancel_v1_claims__claim_id__cancellation_post"),
    ("GET", "/v1/remittances", "list_remittances_v1_remittances_get"),
    ("GET", "/v1/remittances/{advice_id}", "read_remittance_v1_remittances__advice_id__get"),
    (
        "GET",
        "/v1/remittances/{advice_id}/pdf",
        "read_remittance_pdf_v1_remittances__advice_id__pdf_get",
    ),
    (
        "POST",
        "/v1/claims/{claim_id}/lines/{line_no}/undue",
        "flag_undue_v1_claims__claim_id__lines__line_no__undue_post",
    ),
    ("GET", "/v1/members/me/statements", "member_statements_v1_members_me_statements_get"),
    ("GET", "/v1/card-keys", "card_keys_v1_card_keys_get"),
    ("POST", "/v1/cards/decode", "decode_card_v1_cards_decode_post"),
    # The FHIR R4 interface (docs/fhir.md), after every /v1 route.
    ("GET", "/fhir/metadata", "metadata_fhir_metadata_get"),
    (
        "POST",
        "/fhir/CoverageEligibilityRequest",
        "coverage_eligibility_fhir_CoverageEligibilityRequest_post",
    ),
    ("POST", "/fhir/Claim/$submit", "claim_submit_fhir_Claim__submit_post"),
    (
        "GET",
        "/fhir/PaymentReconciliation/{advice_id}",
        "payment_reconciliation_fhir_PaymentReconciliation__advice_id__get",
    ),
    ("GET", "/fhir/ExplanationOfBenefit", "explanation_of_benefit_fhir_ExplanationOfBenefit_get"),
    ("GET", "/fhir/Coverage", "coverage_fhir_Coverage_get"),
    ("POST", "/fhir/Task", "task_create_fhir_Task_post"),
)


def test_the_openapi_document_lists_the_same_operations_in_the_same_order(
    tmp_path: Path,
) -> None:
    app = create_app(initialise(load_settings({"TIERSPAYANT_DATA_DIR": str(tmp_path)})))
    document = app.openapi()
    found = tuple(
        (method.upper(), path, operation["operationId"])
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    )
    assert found == OPERATIONS
    # and each still declares its policy
    assert all(POLICY_KEY in document["paths"][path][method.lower()] for method, path, _ in found)
