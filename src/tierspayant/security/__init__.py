"""Security primitives: key custody, field encryption, blind indexes, audit chain, secrets.

Nothing in this package touches the database; the store layer calls it. Errors raised here
derive from :class:`SecurityError` and carry a stable dotted code, like domain errors, but
they are not the caller's fault: the API maps them to a 5xx (or to a silent "no match"),
never echoing key material or identity data.
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base of the errors raised by the security primitives."""

    code: str = "security.error"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"
