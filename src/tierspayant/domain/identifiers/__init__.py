"""French healthcare identifiers: validate, normalise, or refuse with a precise code.

Every ``parse_*`` function takes what a person or a file gave us and returns the
normalised value, or raises :class:`InvalidIdentifier` whose ``code`` says exactly what
is wrong (``nir.month``, ``rpps.check_digit``…). Codes are stable: callers and tests
match on them. Messages never repeat the submitted value, because it may be a NIR and
errors end up in logs and on screens.

Normalisation is the same everywhere: whitespace (spaces, tabs, non-breaking spaces) is
removed and letters are upper-cased. Anything else that is not part of the identifier
(dots, dashes) is refused rather than guessed at.

Choices made where the rules are not written down in one place:

- **Corsica in FINESS and numéro AM**: the département is written ``2A``/``2B`` (or the
  older ``20``). For the Luhn check, ``2A`` and ``2B`` count as ``20``, so that a number
  keeps its key whichever way its département is written. We found no public statement
  of the rule; this is the reading we apply and test.
- **Corsica in the NIR**: ``2A`` counts as 19 and ``2B`` as 18 when computing the key
  (INSEE rule, as in python-stdnum). ``20`` is still valid: people born in Corsica before
  1976 keep it.
- **AMC number**: 8 to 10 digits, no check digit (see :func:`parse_amc_number`).

The package's modules, one per family: ``nir`` (NIR and birth rank), ``professionals``
(RPPS, FINESS, numéro AM, SIREN, SIRET, numéro AMC), ``bank`` (IBAN, BIC, RIB key), the
``scanner`` that finds NIRs in any text, and ``common`` (normalisation, Luhn) under them.
Every public name is re-exported here.
"""

from tierspayant.domain.identifiers.bank import (
    french_rib_key,
    is_french_iban,
    parse_bic,
    parse_iban,
)
from tierspayant.domain.identifiers.common import luhn_check_digit, luhn_is_valid
from tierspayant.domain.identifiers.nir import (
    BIRTH_RANK_MAX,
    BIRTH_RANK_MIN,
    NIR_LENGTH,
    Nir,
    nir_birth_year_month,
    nir_key,
    nir_sex,
    parse_birth_rank,
    parse_nir,
    parse_nir_value,
)
from tierspayant.domain.identifiers.professionals import (
    AMC_NUMBER_MAX_LENGTH,
    AMC_NUMBER_MIN_LENGTH,
    parse_am_number,
    parse_amc_number,
    parse_finess,
    parse_rpps,
    parse_siren,
    parse_siret,
)
from tierspayant.domain.identifiers.scanner import find_valid_nirs

__all__ = [
    "AMC_NUMBER_MAX_LENGTH",
    "AMC_NUMBER_MIN_LENGTH",
    "BIRTH_RANK_MAX",
    "BIRTH_RANK_MIN",
    "NIR_LENGTH",
    "Nir",
    "find_valid_nirs",
    "french_rib_key",
    "is_french_iban",
    "luhn_check_digit",
    "luhn_is_valid",
    "nir_birth_year_month",
    "nir_key",
    "nir_sex",
    "parse_am_number",
    "parse_amc_number",
    "parse_bic",
    "parse_birth_rank",
    "parse_finess",
    "parse_iban",
    "parse_nir",
    "parse_nir_value",
    "parse_rpps",
    "parse_siren",
    "parse_siret",
]
