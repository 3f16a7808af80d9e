"""Identifier systems, code systems and extension URLs of the FHIR interface.

The national OIDs are used where the value is the national identifier as its registry
writes it (the INS); every other system is the platform's own namespace, documented in
``docs/fhir.md``. Values never change once published: clients match them exactly.
"""

from __future__ import annotations

from typing import Final

FHIR_VERSION: Final = "4.0.1"
BASE: Final = "urn:tierspayant:fhir"

# Identifiers
NIR_CARD: Final = f"{BASE}:sid:nir"  # the NIR printed on the card (the insured person's)
INS_NIR: Final = "urn:oid:1.2.250.1.213.1.4.8"  # the patient's own INS (NIR), only if sent
MEMBER_NUMBER: Final = f"{BASE}:sid:member-number"  # the insurer's member number
RPPS: Final = f"{BASE}:sid:rpps"
FINESS: Final = f"{BASE}:sid:finess"
AM_NUMBER: Final = f"{BASE}:sid:am-number"  # the provider's Assurance Maladie number
AMC_NUMBER: Final = f"{BASE}:sid:amc-number"  # the complementary insurer's number
INVOICE_NUMBER: Final = f"{BASE}:sid:invoice-number"
REQUEST_KEY: Final = f"{BASE}:sid:prior-auth-request-key"
REMITTANCE: Final = f"{BASE}:sid:remittance"
CLAIM_ID: Final = f"{BASE}:sid:claim"
ENGAGEMENT: Final = f"{BASE}:sid:engagement"  # ENG1-R-… or ENG1-C-… (Task.focus)

# Code systems
CARE_DOMAIN: Final = f"{BASE}:cs:care-domain"  # PHAR, MED… (the card's columns)
ACT_CODE: Final = f"{BASE}:cs:act-code"  # CCAM, NGAP, CIP, LPP codes as billed
REASON: Final = f"{BASE}:cs:reason"  # adjudication and refusal reason codes
ERROR_CODE: Final = f"{BASE}:cs:error-code"  # the stable codes of docs/error-codes.md
ADJUDICATION_EXTRA: Final = f"{BASE}:cs:adjudication"  # amo, tm, patient, participation…
ADJUDICATION: Final = "http://terminology.hl7.org/CodeSystem/adjudication"
BENEFIT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/benefit-type"
CLAIM_TYPE: Final = "http://terminology.hl7.org/CodeSystem/claim-type"
PROCESS_PRIORITY: Final = "http://terminology.hl7.org/CodeSystem/processpriority"
PAYMENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/payment-type"
COVERAGE_CLASS: Final = "http://terminology.hl7.org/CodeSystem/coverage-class"
TASK_CODE: Final = "http://hl7.org/fhir/CodeSystem/task-code"  # FHIR's own: cancel…

# Extensions
EXT: Final = f"{BASE}:ext"
BIRTH_RANK: Final = f"{EXT}:birth-rank"  # positiveInt on the patient's NIR identifier
CARD_PROOF: Final = f"{EXT}:card-proof"  # string: the scanned 2D code (TP1:…)
TIERS_PAYANT: Final = f"{EXT}:tiers-payant"  # boolean on a rights item
ACT_FAMILY: Final = f"{EXT}:act-family"  # code on a claim item
BASE_AMOUNT: Final = f"{EXT}:br"  # Money on a claim item: the AMO base (BR)
AMO_RATE: Final = f"{EXT}:amo-rate-bp"  # integer on a claim item: AMO rate, basis points
AMO_PAID: Final = f"{EXT}:amo-paid"  # Money on a claim item (use = claim)
AMC_REQUESTED: Final = f"{EXT}:amc-requested"  # Money on a claim item (use = claim)
EXEMPTION: Final = f"{EXT}:exemption"  # code on a claim item: ald, maternity…
OUT_OF_PATHWAY: Final = f"{EXT}:out-of-care-pathway"  # boolean on a claim item
RSS_CLASS: Final = f"{EXT}:rss-class"  # code on a claim item: A or B
PLV: Final = f"{EXT}:plv"  # Money on a claim item: legal price limit
PSYCHIATRY: Final = f"{EXT}:psychiatry"  # boolean on a claim item
MATERNITY: Final = f"{EXT}:maternity"  # boolean on the Claim
