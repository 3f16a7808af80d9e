"""The beneficiary file an insurer sends: a documented CSV, read as a stream.

UTF-8, ``;`` separator, one header row naming the columns (any order), one beneficiary
per line. See ``docs/formats/beneficiaries.md`` for the columns, the modes and the error
codes. The reader never holds more than one line, and at most a bounded part of a very
long one: memory does not grow with the file.

One physical line is one record, whatever its quotes: a quoted field left open at the end
of its line is a rejected line, never a field that runs on and swallows the lines after
it (in a full file, the beneficiaries of swallowed lines would have been terminated).

Each line comes out either as a validated, normalised :class:`BeneficiaryLine` or as a
:class:`LineError` naming the line, the column and the reason. Messages never contain a
NIR, a name or a birth date: an error report is sent back to the insurer and may be read
by people who must not see identities.

The package's modules, each importing only those before it: ``model`` (columns, modes,
actions, a valid line and a rejected one), ``lines`` (the physical lines, bounded),
``validation`` (the check of one line's cells), ``french`` (the errors in French, naming
line, column and value) and ``reader`` (the file reader and the error report). Every name
importers use is re-exported here.
"""

from tierspayant.formats.beneficiaries.french import explain, explain_file
from tierspayant.formats.beneficiaries.lines import MAX_FIELD_CHARS
from tierspayant.formats.beneficiaries.model import (
    COLUMNS,
    DELIMITER,
    ERROR_REPORT_HEADER,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    Action,
    BeneficiaryFileError,
    BeneficiaryLine,
    Cells,
    ImportMode,
    LineError,
    LineFields,
    RawRecord,
    canonical_fields,
    mask_identifiers,
    shown_value,
)
from tierspayant.formats.beneficiaries.reader import (
    BeneficiaryReader,
    ErrorReportWriter,
    Piece,
    RecordCutter,
    TextLines,
)
from tierspayant.formats.beneficiaries.validation import LineValidator

__all__ = [
    "COLUMNS",
    "DELIMITER",
    "ERROR_REPORT_HEADER",
    "MAX_FIELD_CHARS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Action",
    "BeneficiaryFileError",
    "BeneficiaryLine",
    "BeneficiaryReader",
    "Cells",
    "ErrorReportWriter",
    "ImportMode",
    "LineError",
    "LineFields",
    "LineValidator",
    "Piece",
    "RawRecord",
    "RecordCutter",
    "TextLines",
    "canonical_fields",
    "explain",
    "explain_file",
    "mask_identifiers",
    "shown_value",
]
