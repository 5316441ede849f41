"""Errors that belong to the domain.

Each error says in one sentence what went wrong. None of them knows about HTTP: the edge
(``entrypoints``) maps them to status codes and problem details. ``code`` is a stable
machine-readable slug used by the edge and by clients.
"""

from __future__ import annotations

from dataclasses import dataclass


class CanastaError(Exception):
    """Base of every error canasta raises on purpose."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CanastaError):
    code = "not-found"


class Conflict(CanastaError):
    code = "conflict"


class InvalidInput(CanastaError):
    code = "invalid-input"


class RedemptionRefused(CanastaError):
    """A redemption that the rules refuse. Subclasses name the reason."""

    code = "redemption-refused"


class CardNotFound(RedemptionRefused, NotFound):
    code = "card-not-found"


class MalformedCardId(RedemptionRefused, InvalidInput):
    code = "malformed-card-id"


class CardRevoked(RedemptionRefused):
    code = "card-revoked"


class ProgrammeNotFound(RedemptionRefused, NotFound):
    code = "programme-not-found"


class WrongProgramme(RedemptionRefused):
    """The card's holder has no entitlement in that programme (wrong kind or not eligible)."""

    code = "wrong-programme"


class CycleClosed(RedemptionRefused):
    code = "cycle-closed"


class QuotaExceeded(RedemptionRefused):
    code = "insufficient-balance"


class OutletNotFound(RedemptionRefused, NotFound):
    code = "outlet-not-found"


class OutletMismatch(RedemptionRefused):
    """An outlet tried to redeem in the name of another outlet."""

    code = "outlet-mismatch"


class IdempotencyKeyReused(RedemptionRefused):
    """The same idempotency key came back with a different request body."""

    code = "idempotency-key-reused"


class TooLarge(InvalidInput):
    """A request or file larger than canasta accepts; it was not read."""

    code = "too-large"


class LedgerDamaged(CanastaError):
    """The stored ledger or log is not as canasta wrote it; appending would build on it."""

    code = "ledger-damaged"


class Unavailable(CanastaError):
    """The store could not take the write; nothing was recorded and a retry is safe."""

    code = "unavailable"


class Unauthenticated(CanastaError):
    code = "unauthenticated"


class SignInRefused(Unauthenticated):
    """Wrong card id, PIN, user name or password; the message never says which."""

    code = "sign-in-refused"


class SignInLocked(Unauthenticated):
    """Too many wrong attempts: sign-in is refused until ``until`` (ISO 8601, UTC)."""

    code = "sign-in-locked"

    def __init__(self, message: str, until: str) -> None:
        super().__init__(message)
        self.until = until


class Forbidden(CanastaError):
    """The signed-in person's role does not allow this."""

    code = "forbidden"


class FormExpired(Forbidden):
    """A form posted without its valid CSRF token, or from another site."""

    code = "form-expired"


class ImportRejected(CanastaError):
    """A bulk import found bad rows; nothing was stored."""

    code = "import-rejected"

    def __init__(self, message: str, problems: list[RowProblem]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One bad value in an import file: where it is and why it is refused.

    ``row`` counts data rows from 1 (the header is row 0), ``line`` is the physical line in
    the file (they differ when a quoted value spans lines).
    """

    file: str
    row: int
    field: str
    reason: str
    line: int = 0

    def __str__(self) -> str:
        where = self.file
        if self.row:
            where += f", row {self.row}"
        if self.line:
            where += f" (line {self.line})"
        return f"{where}, field {self.field!r}: {self.reason}"
