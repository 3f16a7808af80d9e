"""The errors of a beneficiary file in French, for the people who fix the file.

Each rejected line reads ``ligne 3, colonne « birth_date » : date attendue au format
AAAA-MM-JJ (valeur « ••/••/•••• »)``: where, what was expected, and the offending value
as :func:`~tierspayant.formats.beneficiaries.model.shown_value` shows it (a NIR, a name
or a birth date masked). The machine code stays beside it in every report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tierspayant.domain.codes import EnrolmentCode
from tierspayant.formats.beneficiaries.model import (
    DELIMITER,
    REQUIRED_COLUMNS,
    BeneficiaryFileError,
    LineError,
)

# What a line's code means, said as what the column expects.
LINE_REASONS: Final[Mapping[str, str]] = {
    EnrolmentCode.LINE_COLUMNS: "nombre de colonnes différent de celui de l'en-tête",
    EnrolmentCode.LINE_QUOTE: (
        "guillemet ouvert et jamais refermé sur la ligne (une ligne, un bénéficiaire)"
    ),
    EnrolmentCode.LINE_FIELD_TOO_LARGE: "valeur de plus de 1 024 caractères",
    EnrolmentCode.LINE_UNREADABLE: "ligne illisible en CSV",
    EnrolmentCode.LINE_ENCODING: "caractères qui ne sont pas de l'UTF-8 valide",
    EnrolmentCode.LINE_MEMBER_NUMBER: (
        "numéro d'adhérent attendu : 1 à 30 lettres, chiffres, « . », « / » ou « - »"
    ),
    EnrolmentCode.LINE_DATE: "date attendue au format AAAA-MM-JJ (par exemple 1984-03-27)",
    EnrolmentCode.LINE_NAME: "nom attendu : 1 à 80 lettres, espaces, apostrophes, points ou tirets",
    EnrolmentCode.LINE_SEX: "sexe attendu : M ou F",
    EnrolmentCode.LINE_QUALITY: "qualité attendue : member, spouse, child ou other",
    EnrolmentCode.LINE_ACTION: "action attendue : A (ajout ou modification), R (radiation) ou vide",
    EnrolmentCode.LINE_CSS: "indicateur CSS attendu : 0, 1 ou vide",
    EnrolmentCode.LINE_COVERAGE_ORDER: "la fin de couverture précède son début",
    EnrolmentCode.LINE_BIRTH_FUTURE: "date de naissance postérieure à la date du fichier",
    EnrolmentCode.LINE_BIRTH_AFTER_COVERAGE: (
        "la couverture commence avant la naissance du bénéficiaire"
    ),
    EnrolmentCode.LINE_NIR_BIRTH_MISMATCH: (
        "l'année ou le mois de naissance ne correspond pas à celui du NIR"
    ),
    EnrolmentCode.LINE_NIR_SEX_MISMATCH: "le sexe ne correspond pas au premier chiffre du NIR",
    EnrolmentCode.LINE_UNKNOWN_CONTRACT: (
        "code de contrat absent du catalogue en vigueur de l'organisme"
    ),
    EnrolmentCode.LINE_DUPLICATE: (
        "même NIR et même rang de naissance qu'une ligne précédente : seule la première "
        "est appliquée"
    ),
    EnrolmentCode.LINE_UNKNOWN_BENEFICIARY: (
        "radiation d'un bénéficiaire que la plateforme ne connaît pas pour cet organisme"
    ),
    # A malformed NIR or birth rank: ``line.`` and the identifier's own code.
    "line.nir.empty": "NIR absent",
    "line.nir.length": "le NIR compte 15 caractères (13 et une clé de 2 chiffres)",
    "line.nir.format": "NIR attendu en chiffres (2A ou 2B pour la Corse)",
    "line.nir.sex": "le premier chiffre du NIR est 1, 2, 3, 4, 7 ou 8",
    "line.nir.month": "mois de naissance du NIR impossible",
    "line.nir.department": "département du NIR invalide (00)",
    "line.nir.key": "la clé du NIR ne correspond pas à ses 13 premiers caractères",
    "line.birth_rank.empty": "rang de naissance absent",
    "line.birth_rank.format": "rang de naissance attendu : un nombre entier",
    "line.birth_rank.range": "le rang de naissance va de 1 à 9",
}

# The refusals of a whole file (nothing applied), by code.
FILE_REASONS: Final[Mapping[str, str]] = {
    EnrolmentCode.FILE_EMPTY: "le fichier est vide : une ligne d'en-tête est obligatoire",
    EnrolmentCode.FILE_HEADER_QUOTE: "un nom de colonne ouvre un guillemet sans le refermer",
    EnrolmentCode.FILE_HEADER_UNKNOWN_COLUMN: "colonne inconnue",
    EnrolmentCode.FILE_HEADER_DUPLICATE_COLUMN: "colonne présente deux fois",
    EnrolmentCode.FILE_HEADER_MISSING_COLUMN: "colonne(s) obligatoire(s) absente(s)",
}


def _quoted(value: str) -> str:
    return f"« {value} »" if value else "vide"


def explain(error: LineError) -> str:
    """One rejected line in French: line, column, reason, offending value."""
    where = f"ligne {error.line_no}"
    if error.column:
        where += f", colonne « {error.column} »"
    reason = LINE_REASONS.get(error.code, "valeur refusée")
    if error.code == EnrolmentCode.LINE_COLUMNS and error.value is not None:
        plural = "s" if error.value not in ("0", "1") else ""
        return (
            f"{where} : autant de colonnes que l'en-tête attendues, séparées par "
            f"« {DELIMITER} » ; {error.value} colonne{plural} trouvée{plural}"
        )
    if error.value is None:
        return f"{where} : {reason}"
    return f"{where} : {reason} (valeur {_quoted(error.value)})"


def explain_file(error: BeneficiaryFileError) -> str:
    """A refused file in French, naming the header's column and the value at fault."""
    reason = FILE_REASONS.get(error.code, "fichier refusé")
    details = error.details
    if "line" not in details:
        return f"Fichier refusé : {reason}. Rien n'a été appliqué."
    column = details.get("column")
    value = str(details.get("value", ""))
    if error.code == EnrolmentCode.FILE_HEADER_MISSING_COLUMN:
        found = f"colonne(s) obligatoire(s) absente(s) : {value}"
    else:
        found = f"colonne {column} {_quoted(value)} : {reason}"
    return (
        f"Fichier refusé, ligne {details['line']} (en-tête), {found}. Colonnes attendues : "
        f"{', '.join(REQUIRED_COLUMNS)} et, si besoin, css et action. Rien n'a été appliqué."
    )
