"""Reading submitted forms: bounded text, dates, integers, euros; French refusals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from starlette.datastructures import FormData, UploadFile

from tierspayant.domain.codes import RequestCode
from tierspayant.services.errors import ServiceError

MAX_CENTS = 100_000_000  # the API's bound on one amount (1 M€)


def _refuse(name: str, message: str) -> ServiceError:
    return ServiceError(RequestCode.PORTAL_FORM, message, field=name)


def text(form: FormData, name: str, *, max_length: int = 200, required: bool = True) -> str:
    """A trimmed text field; empty is refused when ``required``."""
    raw = form.get(name)
    value = raw.strip() if isinstance(raw, str) else ""
    if len(value) > max_length:
        raise _refuse(name, f"{name}: at most {max_length} characters")
    if required and not value:
        raise _refuse(name, f"{name} is required")
    return value


def optional_text(form: FormData, name: str, *, max_length: int = 200) -> str | None:
    return text(form, name, max_length=max_length, required=False) or None


def day(form: FormData, name: str, *, default: date | None = None) -> date:
    """A date typed as ``AAAA-MM-JJ`` (HTML date input) or ``JJ/MM/AAAA``."""
    value = text(form, name, max_length=10, required=default is None)
    if not value and default is not None:
        return default
    try:
        if "/" in value:
            dd, mm, yyyy = value.split("/")
            return date(int(yyyy), int(mm), int(dd))
        return date.fromisoformat(value)
    except ValueError:
        raise _refuse(name, f"{name}: not a date") from None


def integer(form: FormData, name: str, *, low: int, high: int, default: int | None = None) -> int:
    value = text(form, name, max_length=9, required=default is None)
    if not value and default is not None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        raise _refuse(name, f"{name}: a whole number from {low} to {high}")
    return int(value)


def optional_integer(form: FormData, name: str, *, low: int, high: int) -> int | None:
    if not text(form, name, required=False):
        return None
    return integer(form, name, low=low, high=high)


def _hundredths(form: FormData, name: str, *, required: bool, code: RequestCode) -> int | None:
    """A positive decimal typed with a comma or a point, times 100, without float."""
    value = text(form, name, max_length=12, required=required).replace(",", ".")
    if not value:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ServiceError(code, f"{name}: not a number", field=name) from None
    if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ServiceError(code, f"{name}: a positive number with at most two decimals", field=name)
    return int(amount * 100)


def cents(form: FormData, name: str, *, required: bool = True) -> int | None:
    """Euros typed with a comma or a point (``12,50``) → integer cents, never a float."""
    value = _hundredths(form, name, required=required, code=RequestCode.PORTAL_AMOUNT)
    if value is not None and value > MAX_CENTS:
        raise ServiceError(
            RequestCode.PORTAL_AMOUNT, f"{name}: at most {MAX_CENTS} cents", field=name
        )
    return value


def basis_points(form: FormData, name: str) -> int:
    """A rate typed in percent (``70`` or ``70,5``) → basis points, 0 to 10 000."""
    value = _hundredths(form, name, required=True, code=RequestCode.PORTAL_RATE)
    if value is None or value > 10_000:
        raise ServiceError(RequestCode.PORTAL_RATE, f"{name}: a rate from 0 to 100", field=name)
    return value


def choices(form: FormData, name: str, allowed: frozenset[str]) -> tuple[str, ...]:
    """Every checked value of a group of boxes, each among ``allowed``."""
    values = tuple(v for v in form.getlist(name) if isinstance(v, str))
    if any(v not in allowed for v in values):
        raise _refuse(name, f"{name}: unknown value")
    return values


def upload(form: FormData, name: str) -> UploadFile:
    value = form.get(name)
    if not isinstance(value, UploadFile) or not value.filename:
        raise ServiceError(RequestCode.PORTAL_FILE_MISSING, "choose a file", field=name)
    return value


def checkbox(form: FormData, name: str) -> bool:
    return form.get(name) in {"on", "1", "true"}
