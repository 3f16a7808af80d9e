"""The registries of error codes: one ``StrEnum`` per capability.

A code is the stable, machine-readable part of a refusal (``{"error": {"code": …}}`` in
the API, ``[code]`` on the command line). Its value never changes once published; the
member name is only for the code. Members are ``str``: they compare and serialise equal to
their value. Every member is listed, with its HTTP status, exit status and French label,
in ``docs/error-codes.md`` (a test keeps the two equal).

The adjudication reason codes of a claim line are not errors: they are
:class:`tierspayant.domain.adjudication.Reason`.
"""

# ruff: noqa: S105 - codes such as "auth.invalid_token" name failures, they hold no secret

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Base of every registry below (no member of its own)."""


class IdentifierCode(ErrorCode):
    """Identifiers (NIR, RPPS, FINESS, AM, AMC, SIREN, SIRET, IBAN, BIC, birth rank)."""

    NIR_EMPTY = "nir.empty"
    NIR_LENGTH = "nir.length"
    NIR_FORMAT = "nir.format"
    NIR_SEX = "nir.sex"
    NIR_MONTH = "nir.month"
    NIR_DEPARTMENT = "nir.department"
    NIR_KEY = "nir.key"
    RPPS_EMPTY = "rpps.empty"
    RPPS_LENGTH = "rpps.length"
    RPPS_FORMAT = "rpps.format"
    RPPS_CHECK_DIGIT = "rpps.check_digit"
    FINESS_EMPTY = "finess.empty"
    FINESS_LENGTH = "finess.length"
    FINESS_FORMAT = "finess.format"
    FINESS_DEPARTMENT = "finess.department"
    FINESS_CHECK_DIGIT = "finess.check_digit"
    AM_NUMBER_EMPTY = "am_number.empty"
    AM_NUMBER_LENGTH = "am_number.length"
    AM_NUMBER_FORMAT = "am_number.format"
    AM_NUMBER_DEPARTMENT = "am_number.department"
    AM_NUMBER_CHECK_DIGIT = "am_number.check_digit"
    AMC_NUMBER_EMPTY = "amc_number.empty"
    AMC_NUMBER_LENGTH = "amc_number.length"
    AMC_NUMBER_FORMAT = "amc_number.format"
    SIREN_EMPTY = "siren.empty"
    SIREN_LENGTH = "siren.length"
    SIREN_FORMAT = "siren.format"
    SIREN_CHECK_DIGIT = "siren.check_digit"
    SIRET_EMPTY = "siret.empty"
    SIRET_LENGTH = "siret.length"
    SIRET_FORMAT = "siret.format"
    SIRET_CHECK_DIGIT = "siret.check_digit"
    IBAN_EMPTY = "iban.empty"
    IBAN_FORMAT = "iban.format"
    IBAN_COUNTRY = "iban.country"
    IBAN_LENGTH = "iban.length"
    IBAN_CHECKSUM = "iban.checksum"
    IBAN_RIB_KEY = "iban.rib_key"
    BIC_EMPTY = "bic.empty"
    BIC_LENGTH = "bic.length"
    BIC_COUNTRY = "bic.country"
    BIC_FORMAT = "bic.format"
    BIRTH_RANK_EMPTY = "birth_rank.empty"
    BIRTH_RANK_FORMAT = "birth_rank.format"
    BIRTH_RANK_RANGE = "birth_rank.range"


class EligibilityCode(ErrorCode):
    """Eligibility (rights check, IDB)."""

    IDENTIFIERS_MISSING = "eligibility.identifiers_missing"
    BIRTH_RANK_MISSING = "eligibility.birth_rank_missing"
    DOMAINS_MISSING = "eligibility.domains_missing"
    DOMAIN = "eligibility.domain"
    CARE_DATE_FUTURE = "eligibility.care_date_future"
    CARE_DATE_PAST = "eligibility.care_date_past"


class CalculationCode(ErrorCode):
    """Calculation (CLC) and pricing."""

    CALCULATION_NO_RIGHTS = "calculation.no_rights"
    NO_CONVENTION = "calculation.no_convention"
    TOO_MANY_OPEN = "calculation.too_many_open"
    INVALID_REQUEST = "pricing.invalid_request"
    NO_LINES = "pricing.no_lines"
    NOT_COVERED_YET = "pricing.not_covered_yet"
    DOMAIN_NOT_COVERED = "pricing.domain_not_covered"
    UNKNOWN_FAMILY = "pricing.unknown_family"
    FAMILY_DOMAIN_MISMATCH = "pricing.family_domain_mismatch"
    AMOUNTS_INCONSISTENT = "pricing.amounts_inconsistent"
    RSS_NOT_APPLICABLE = "pricing.rss_not_applicable"
    ABOVE_LEGAL_PRICE = "pricing.above_legal_price"


class CatalogueCode(ErrorCode):
    """Guarantee catalogue and responsible-contract rules."""

    MALFORMED = "catalogue.malformed"
    UNSUPPORTED_FORMAT = "catalogue.unsupported_format"
    BAD_INSURER = "catalogue.bad_insurer"
    INSURER_MISMATCH = "catalogue.insurer_mismatch"
    NO_CONTRACTS = "catalogue.no_contracts"
    BAD_COVERAGE_CODE = "catalogue.bad_coverage_code"
    BAD_CARD_ROUTING = "catalogue.bad_card_routing"
    BAD_PERIOD = "catalogue.bad_period"
    UNKNOWN_DOMAIN = "catalogue.unknown_domain"
    WRONG_TYPE = "catalogue.wrong_type"
    UNKNOWN_KEY = "catalogue.unknown_key"
    MISSING_KEY = "catalogue.missing_key"
    NEGATIVE_NUMBER = "catalogue.negative_number"
    NEGATIVE_AMOUNT = "catalogue.negative_amount"
    TOO_MANY_DECIMALS = "catalogue.too_many_decimals"
    AMOUNT_TOO_LARGE = "catalogue.amount_too_large"
    EMPTY_CEILING = "catalogue.empty_ceiling"
    BAD_COUNT = "catalogue.bad_count"
    BAD_COUNTER = "catalogue.bad_counter"
    BAD_FREQUENCY = "catalogue.bad_frequency"
    BAD_AGE = "catalogue.bad_age"
    BAD_FAMILY = "catalogue.bad_family"
    EMPTY_GUARANTEE = "catalogue.empty_guarantee"
    CONFLICTING_FORMULA = "catalogue.conflicting_formula"
    BAD_RATE = "catalogue.bad_rate"
    BAD_WAITING_PERIOD = "catalogue.bad_waiting_period"
    BAD_CODE = "catalogue.bad_code"
    GUARANTEE_DOMAIN_NOT_COVERED = "catalogue.guarantee_domain_not_covered"
    DUPLICATE_CONTRACT = "catalogue.duplicate_contract"
    UNKNOWN_CONTRACT = "catalogue.unknown_contract"
    UNKNOWN_FAMILY = "catalogue.unknown_family"
    FAMILY_DOMAIN_MISMATCH = "catalogue.family_domain_mismatch"
    RESPONSABLE_COVERS_PARTICIPATION = "catalogue.responsable.covers_participation"
    RESPONSABLE_COVERS_FRANCHISES = "catalogue.responsable.covers_franchises"
    RESPONSABLE_COVERS_HORS_PARCOURS = "catalogue.responsable.covers_hors_parcours"
    RESPONSABLE_RSS_NOT_FULL = "catalogue.responsable.rss_not_full"
    RESPONSABLE_TM_NOT_COVERED = "catalogue.responsable.tm_not_covered"
    RESPONSABLE_HOSPITAL_DAILY_CHARGE = "catalogue.responsable.hospital_daily_charge"
    RESPONSABLE_NON_OPTAM_ABOVE_100 = "catalogue.responsable.non_optam_above_100"
    RESPONSABLE_OPTAM_GAP = "catalogue.responsable.optam_gap"
    RESPONSABLE_RENEWAL_PERIOD = "catalogue.responsable.renewal_period"
    RESPONSABLE_FRAME_CAP = "catalogue.responsable.frame_cap"
    RESPONSABLE_OPTICS_CEILING = "catalogue.responsable.optics_ceiling"
    RESPONSABLE_OPTICS_FLOOR = "catalogue.responsable.optics_floor"
    RESPONSABLE_HEARING_CEILING = "catalogue.responsable.hearing_ceiling"


class ReferenceCode(ErrorCode):
    """Regulatory reference figures."""

    EMPTY = "reference.empty"
    MALFORMED = "reference.malformed"
    NOT_IN_FORCE = "reference.not_in_force"


class PriorAuthCode(ErrorCode):
    """Prior authorisation (PEC)."""

    ONE_DOMAIN = "prior_auth.one_domain"
    DOMAIN = "prior_auth.domain"
    REQUEST_KEY = "prior_auth.request_key"
    KEY_REUSED = "prior_auth.key_reused"
    UNKNOWN = "prior_auth.unknown"
    REASON_REQUIRED = "prior_auth.reason_required"
    DECIDED = "prior_auth.decided"
    DECISION_REQUIRED = "prior_auth.decision_required"
    NO_CONVENTION = "prior_auth.no_convention"


class ClaimCode(ErrorCode):
    """Claims (invoices)."""

    INVOICE_NUMBER = "claim.invoice_number"
    LINES = "claim.lines"
    ACT_CODE = "claim.act_code"
    QUANTITY = "claim.quantity"
    NEGATIVE = "claim.negative"
    AMO_RATE = "claim.amo_rate"
    AMC_ABOVE_COST = "claim.amc_above_cost"
    LINE_CEILING = "claim.line_ceiling"
    INVOICE_CEILING = "claim.invoice_ceiling"
    NO_CONVENTION = "claim.no_convention"
    NUMBER_REUSED = "claim.number_reused"
    CANCELLED = "claim.cancelled"
    INSURER_CHANGED = "claim.insurer_changed"
    SUPERSEDED = "claim.superseded"
    ALREADY_PAID = "claim.already_paid"
    UNKNOWN = "claim.unknown"
    DISPUTE_LINE = "claim.dispute_line"
    DISPUTE_TEXT = "claim.dispute_text"
    DISPUTE_UNKNOWN = "claim.dispute_unknown"
    DISPUTE_ANSWERED = "claim.dispute_answered"


class EngagementCode(ErrorCode):
    """Engagement numbers (engagements de prise en charge) carried by invoices."""

    INVALID = "engagement.invalid"
    NOT_FOUND = "engagement.not_found"


class EnrolmentCode(ErrorCode):
    """Enrolment: beneficiary files, claim files, lines."""

    MODE = "enrolment.mode"
    NO_CATALOGUE = "enrolment.no_catalogue"
    NO_KEYS = "enrolment.no_keys"
    EMPTY_FULL_FILE = "enrolment.empty_full_file"
    CONFIRM_TERMINATIONS = "enrolment.confirm_terminations"
    TERMINATIONS_UNCONFIRMED = "enrolment.terminations_unconfirmed"
    TERMINATIONS_MISMATCH = "enrolment.terminations_mismatch"
    FILE_EMPTY = "file.empty"
    FILE_HEADER_QUOTE = "file.header.quote"
    FILE_HEADER_UNKNOWN_COLUMN = "file.header.unknown_column"
    FILE_HEADER_DUPLICATE_COLUMN = "file.header.duplicate_column"
    FILE_HEADER_MISSING_COLUMN = "file.header.missing_column"
    FILE_LINE_TOO_LONG = "file.line_too_long"
    FILE_JSON = "file.json"
    FILE_LINES = "file.lines"
    FILE_TYPE = "file.type"
    FILE_UNKNOWN_FIELD = "file.unknown_field"
    FILE_MISSING = "file.missing"
    FILE_DATE = "file.date"
    FILE_CODE = "file.code"
    FILE_SYNTAX = "file.syntax"
    FILE_STRUCTURE = "file.structure"
    LINE_COLUMNS = "line.columns"
    LINE_QUOTE = "line.quote"
    LINE_FIELD_TOO_LARGE = "line.field_too_large"
    LINE_UNREADABLE = "line.unreadable"
    LINE_ENCODING = "line.encoding"
    LINE_MEMBER_NUMBER = "line.member_number"
    LINE_DATE = "line.date"
    LINE_NAME = "line.name"
    LINE_SEX = "line.sex"
    LINE_QUALITY = "line.quality"
    LINE_ACTION = "line.action"
    LINE_CSS = "line.css"
    LINE_COVERAGE_ORDER = "line.coverage_order"
    LINE_BIRTH_FUTURE = "line.birth_future"
    LINE_BIRTH_AFTER_COVERAGE = "line.birth_after_coverage"
    LINE_NIR_BIRTH_MISMATCH = "line.nir_birth_mismatch"
    LINE_NIR_SEX_MISMATCH = "line.nir_sex_mismatch"
    LINE_UNKNOWN_CONTRACT = "line.unknown_contract"
    LINE_DUPLICATE = "line.duplicate"
    LINE_UNKNOWN_BENEFICIARY = "line.unknown_beneficiary"
    # The takeover file (docs/formats/takeover.md).
    TAKEOVER_REFUSED = "takeover.refused"
    LINE_KIND = "line.kind"
    LINE_COUNTER = "line.counter"
    LINE_AMOUNT = "line.amount"
    LINE_UNITS = "line.units"
    LINE_AGREEMENT = "line.agreement"
    LINE_PROVIDER = "line.provider"


class CardCode(ErrorCode):
    """Cards."""

    PROOF_INVALID = "card.proof_invalid"
    YEAR = "card.year"
    FAMILY_UNKNOWN = "card.family_unknown"
    REASON = "card.reason"
    SERIAL = "card.serial"
    UNKNOWN = "card.unknown"
    NOT_ACTIVE = "card.not_active"
    MISREAD = "card.misread"


class PaymentCode(ErrorCode):
    """Payments, remittance advice, returns, undue amounts."""

    NEGATIVE_GROSS = "payments.negative_gross"
    PERIOD_BILLED = "payments.period_billed"
    NOT_BUSINESS_DAY = "payments.not_business_day"
    DATE_PAST = "payments.date_past"
    BACKDATE_REASON = "payments.backdate_reason"
    NO_IBAN = "payments.no_iban"
    RUN_LOCKED = "run.locked"
    RUN_LEASE_LOST = "run.lease_lost"
    REMITTANCE_UNKNOWN = "remittance.unknown"
    REMITTANCE_FORMAT = "remittance.format"
    RETURNS_TOO_LARGE = "returns.too_large"
    RETURNS_ENCODING = "returns.encoding"
    RETURNS_DOCTYPE = "returns.doctype"
    RETURNS_XML = "returns.xml"
    RETURNS_FORMAT = "returns.format"
    RETURNS_GROUP_ONLY = "returns.group_only"
    RETURNS_NO_REASON = "returns.no_reason"
    RETURNS_AMOUNT = "returns.amount"
    RETURNS_KIND = "returns.kind"
    RETURNS_UNKNOWN_TRANSFER = "returns.unknown_transfer"
    RETURNS_TRANSFER_AMOUNT = "returns.transfer_amount"
    RETURNS_SPLIT_PAYMENT = "returns.split_payment"
    SEPA_NEGATIVE = "sepa.negative"
    SEPA_TOTALS = "sepa.totals"
    SEPA_AMOUNT = "sepa.amount"
    SEPA_TEXT = "sepa.text"
    SEPA_ID = "sepa.id"
    SEPA_ACCOUNT = "sepa.account"
    SEPA_DATE = "sepa.date"
    OVERPAYMENT_REASON = "overpayment.reason"
    OVERPAYMENT_NOT_PAID = "overpayment.not_paid"
    OVERPAYMENT_INVOICE_AMBIGUOUS = "overpayment.invoice_ambiguous"


class BillingCode(ErrorCode):
    """Billing."""

    PERIOD = "billing.period"
    PERIOD_OPEN = "billing.period_open"
    PERIOD_BILLED = "billing.period_billed"
    PERIOD_ORDER = "billing.period_order"
    PAYMENTS_RUNNING = "billing.payments_running"
    FEE_RANGE = "billing.fee_range"
    DETAIL_MISMATCH = "billing.detail_mismatch"
    MANDATE_ID = "mandate.id"


class LedgerCode(ErrorCode):
    """Ledger."""

    BAD_ACCOUNT = "ledger.bad_account"
    NOT_CENTS = "ledger.not_cents"
    NEGATIVE = "ledger.negative"
    ONE_SIDE = "ledger.one_side"
    NO_REFERENCE = "ledger.no_reference"
    TOO_FEW_ENTRIES = "ledger.too_few_entries"
    UNBALANCED = "ledger.unbalanced"
    REFERENCE_REUSED = "ledger.reference_reused"


class AuthCode(ErrorCode):
    """Authentication and accounts."""

    MISSING_TOKEN = "auth.missing_token"
    INVALID_TOKEN = "auth.invalid_token"
    INVALID_CLIENT = "auth.invalid_client"
    UNSUPPORTED_GRANT = "auth.unsupported_grant"
    FORBIDDEN = "auth.forbidden"
    WRONG_PRINCIPAL = "auth.wrong_principal"
    NO_PROVIDER = "auth.no_provider"
    NO_INSURER = "auth.no_insurer"
    INVALID_CREDENTIALS = "auth.invalid_credentials"
    LOCKED = "auth.locked"
    SUSPENDED = "auth.suspended"
    INVALID_CHALLENGE = "auth.invalid_challenge"
    MFA_METHOD = "auth.mfa_method"
    MFA_FAILED = "auth.mfa_failed"
    MFA_ENROLMENT_REQUIRED = "auth.mfa_enrolment_required"
    NO_SECURITY_KEY = "auth.no_security_key"
    ALREADY_ENROLLED = "auth.already_enrolled"
    STEP_UP_REQUIRED = "auth.step_up_required"
    SESSION_EXPIRED = "auth.session_expired"
    SESSION_INVALID = "auth.session_invalid"
    UNKNOWN_PROFESSIONAL = "auth.unknown_professional"
    ACCOUNT_KIND = "account.kind"
    ACCOUNT_LOGIN = "account.login"
    ACCOUNT_PASSWORD = "account.password"
    ACCOUNT_PASSWORD_NOT_ALLOWED = "account.password_not_allowed"
    ACCOUNT_PROVIDER = "account.provider"
    ACCOUNT_INSURER = "account.insurer"
    ACCOUNT_BENEFICIARY = "account.beneficiary"
    ACCOUNT_EXISTS = "account.exists"
    ACCOUNT_UNKNOWN = "account.unknown"
    ACCOUNT_DEMO_ONLY = "account.demo_only"
    OIDC_DISCOVERY = "oidc.discovery"
    OIDC_JWKS = "oidc.jwks"
    OIDC_TOKEN = "oidc.token"
    OIDC_USERINFO = "oidc.userinfo"
    OIDC_SIGNATURE = "oidc.signature"
    OIDC_ISSUER = "oidc.issuer"
    OIDC_AUDIENCE = "oidc.audience"
    OIDC_EXPIRED = "oidc.expired"
    OIDC_NONCE = "oidc.nonce"
    OIDC_ACR = "oidc.acr"
    OIDC_AMR = "oidc.amr"
    OIDC_AUTH_TIME = "oidc.auth_time"
    OIDC_SUBJECT = "oidc.subject"
    OIDC_RPPS = "oidc.rpps"
    WEBAUTHN_REGISTRATION = "webauthn.registration"
    WEBAUTHN_AUTHENTICATION = "webauthn.authentication"
    WEBAUTHN_SIGN_COUNT = "webauthn.sign_count"
    PASSWORD_TOO_SHORT = "password.too_short"
    PASSWORD_TOO_LONG = "password.too_long"
    PASSWORD_CONTAINS_IDENTITY = "password.contains_identity"
    PASSWORD_COMMON = "password.common"


class GuardCode(ErrorCode):
    """Guard, limits and canaries."""

    SUSPENDED = "guard.suspended"
    RATE = "guard.rate"
    STRUCTURE_RATE = "guard.structure_rate"
    GLOBAL_RATE = "guard.global_rate"
    HUMAN_SPEED = "guard.human_speed"
    DAILY_CAP = "guard.daily_cap"
    MISS_RATIO = "guard.miss_ratio"
    NO_PROOF_QUOTA = "guard.no_proof_quota"
    STEP_UP_IGNORED = "guard.step_up_ignored"
    UNBILLED = "guard.unbilled"
    UNBILLED_PENDING = "guard.unbilled_pending"
    RESERVATIONS = "guard.reservations"
    UNAVAILABLE = "guard.unavailable"
    DISABLED = "guard.disabled"
    SECOND_APPROVER_REQUIRED = "guard.second_approver_required"
    LIMITS_EXCEEDED = "limits.exceeded"
    LIMITS_UNAVAILABLE = "limits.unavailable"
    CANARY_COUNT = "canary.count"
    CANARY_NO_POPULATION = "canary.no_population"
    CANARY_INVALID = "canary.invalid"


class IncidentCode(ErrorCode):
    """Incidents, break-glass and alerts."""

    CRITERIA = "incident.criteria"
    WINDOW = "incident.window"
    PRINCIPAL = "incident.principal"
    SCOPE_FILE = "incident.scope_file"
    BREAKGLASS_REASON = "breakglass.reason"
    BREAKGLASS_DURATION = "breakglass.duration"
    BREAKGLASS_TARGET = "breakglass.target"
    BREAKGLASS_NOT_FOUND = "breakglass.not_found"
    BREAKGLASS_NOT_PENDING = "breakglass.not_pending"
    BREAKGLASS_EXPIRED = "breakglass.expired"
    BREAKGLASS_SECOND_APPROVER_REQUIRED = "breakglass.second_approver_required"
    BREAKGLASS_NO_GRANT = "breakglass.no_grant"
    PRINCIPAL_NOT_FOUND = "principal.not_found"
    PRINCIPAL_NOT_SUSPENDED = "principal.not_suspended"
    ALERT_NOT_FOUND = "alert.not_found"


class DirectoryCode(ErrorCode):
    """Directory: insurers, providers, beneficiaries."""

    INSURER_KIND = "insurer.kind"
    INSURER_NAME = "insurer.name"
    INSURER_EXISTS = "insurer.exists"
    INSURER_UNKNOWN = "insurer.unknown"
    PROVIDER_CATEGORY = "provider.category"
    PROVIDER_NAME = "provider.name"
    PROVIDER_EXISTS = "provider.exists"
    PROVIDER_UNKNOWN = "provider.unknown"
    PROVIDER_FILE_COLUMNS = "provider_file.columns"
    BENEFICIARY_NOT_FOUND = "beneficiary.not_found"
    BANK_CHANGE_PENDING = "bank_details.pending"
    BANK_CHANGE_SAME_PERSON = "bank_details.same_person"
    BANK_CHANGE_VERIFIER = "bank_details.verifier"
    BANK_CHANGE_UNKNOWN = "bank_details.unknown"
    BANK_CHANGE_CLOSED = "bank_details.closed"
    BANK_CHANGE_METHOD = "bank_details.method"


class PlatformCode(ErrorCode):
    """Platform: set-up, database, keys, audit, retention."""

    NO_SCHEMA = "platform.no_schema"
    NO_KEYRING = "platform.no_keyring"
    DATABASE_BUSY = "database.busy"
    DATABASE_UNAVAILABLE = "database.unavailable"
    REDIS_UNAVAILABLE = "redis.unavailable"
    KEYRING_MISSING = "keyring.missing"
    KEYRING_EXISTS = "keyring.exists"
    KEYRING_CORRUPT = "keyring.corrupt"
    KEYRING_ACTIVE_KEK = "keyring.active_kek"
    KEYRING_UNKNOWN_KEK = "keyring.unknown_kek"
    KEYRING_BAD_BLOB = "keyring.bad_blob"
    KEYRING_UNWRAP_FAILED = "keyring.unwrap_failed"
    KEYS_UNSUPPORTED = "keys.unsupported"
    KEYS_NO_DATA_KEYS = "keys.no_data_keys"
    CRYPTO_BAD_CIPHERTEXT = "crypto.bad_ciphertext"
    CRYPTO_KEY_VERSION_MISMATCH = "crypto.key_version_mismatch"
    CRYPTO_DECRYPT_FAILED = "crypto.decrypt_failed"
    CHECKPOINT_BAD_KEY = "checkpoint.bad_key"
    CHECKPOINT_BAD_PUBLIC_KEY = "checkpoint.bad_public_key"
    CHECKPOINT_EXISTS = "checkpoint.exists"
    CHECKPOINT_MALFORMED = "checkpoint.malformed"
    AUDIT_CHAIN_BROKEN = "audit.chain_broken"
    AUDIT_ARCHIVE_REFUSED = "audit_archive.refused"
    AUDIT_ARCHIVE_NOT_COVERED = "audit_archive.not_covered"
    AUDIT_ARCHIVE_EXISTS = "audit_archive.exists"
    AUDIT_ARCHIVE_MONTH = "audit_archive.month"
    KEY_EXPORT_MALFORMED = "key_export.malformed"
    KEY_EXPORT_REFUSED = "key_export.refused"
    KEY_EXPORT_PASSPHRASE = "key_export.passphrase"
    BACKUP_EXISTS = "backup.exists"
    BACKUP_COMMAND_FAILED = "backup.command_failed"
    BACKUP_NOT_READY = "backup.not_ready"
    BACKUP_SAMPLES = "backup.samples"
    BACKUP_TARGET = "backup.target"
    RETENTION_TOO_SHORT = "retention.too_short"


class RequestCode(ErrorCode):
    """Requests, routes, portal forms and the command line."""

    MALFORMED_JSON = "request.malformed_json"
    MALFORMED_BODY = "request.malformed_body"
    UNSUPPORTED_MEDIA_TYPE = "request.unsupported_media_type"
    TOO_LARGE = "request.too_large"
    HEADER_TOO_LARGE = "request.header_too_large"
    DUPLICATE_KEY = "request.duplicate_key"
    UNKNOWN_FIELD = "request.unknown_field"
    MISSING_FIELD = "request.missing_field"
    INVALID_DATE = "request.invalid_date"
    INVALID_VALUE = "request.invalid_value"
    IDEMPOTENCY_KEY_INVALID = "request.idempotency_key_invalid"
    IDEMPOTENCY_KEY_REUSED = "request.idempotency_key_reused"
    ROUTE_NOT_FOUND = "route.not_found"
    ROUTE_METHOD_NOT_ALLOWED = "route.method_not_allowed"
    PORTAL_FORM = "portal.form"
    PORTAL_FILE_MISSING = "portal.file_missing"
    PORTAL_AMOUNT = "portal.amount"
    PORTAL_RATE = "portal.rate"
    CLI_USAGE = "cli.usage"
    CLI_DATE = "cli.date"
    CLI_FILE = "cli.file"
    VALID_FROM_FORMAT = "valid_from.format"


class FhirCode(ErrorCode):
    """The FHIR R4 interface (``/fhir``): resources it cannot read, interactions it refuses."""

    MALFORMED = "fhir.malformed"
    DUPLICATE_KEY = "fhir.duplicate_key"
    INVALID = "fhir.invalid"
    WRONG_RESOURCE_TYPE = "fhir.wrong_resource_type"
    UNKNOWN_RESOURCE_TYPE = "fhir.unknown_resource_type"
    UNSUPPORTED_USE = "fhir.unsupported_use"
    UNSUPPORTED_TASK = "fhir.unsupported_task"
    SEARCH_REFUSED = "fhir.search_refused"
    INTERACTION_UNSUPPORTED = "fhir.interaction_unsupported"


class ContainmentCode(ErrorCode):
    """Containment switches: card-proof-only mode or off, for a scope, two operators."""

    CARD_PROOF_REQUIRED = "containment.card_proof_required"
    OFF = "containment.off"
    SCOPE = "containment.scope"
    MODE = "containment.mode"
    REASON = "containment.reason"
    DURATION = "containment.duration"
    NOT_FOUND = "containment.not_found"
    NOT_WAITING = "containment.not_waiting"
    NOT_IN_FORCE = "containment.not_in_force"
    PROPOSAL_LAPSED = "containment.proposal_lapsed"
    SECOND_OPERATOR_REQUIRED = "containment.second_operator_required"
    OPERATOR_ONLY = "containment.operator_only"


REGISTRIES: tuple[type[ErrorCode], ...] = (
    IdentifierCode,
    EligibilityCode,
    CalculationCode,
    CatalogueCode,
    ReferenceCode,
    PriorAuthCode,
    ClaimCode,
    EngagementCode,
    EnrolmentCode,
    CardCode,
    PaymentCode,
    BillingCode,
    LedgerCode,
    AuthCode,
    GuardCode,
    IncidentCode,
    DirectoryCode,
    PlatformCode,
    RequestCode,
    FhirCode,
    ContainmentCode,
)
"""Every registry, in the order of ``docs/error-codes.md``."""
