"""Secrets people type: staff passwords and card PINs, hashed with argon2id, and the
lockout that makes guessing them online slow.

A PIN has few digits, so its hash alone would not stop someone holding a copy of the
table; what stops guessing is the lockout: after ``MAX_FAILURES`` wrong attempts in a row,
sign-in is refused for a period that doubles with each further lock, up to a day.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from canasta.domain.errors import InvalidInput

MAX_FAILURES = 5
FIRST_LOCK = timedelta(minutes=15)
LONGEST_LOCK = timedelta(hours=24)
MIN_PASSWORD = 12
PIN_DIGITS = (4, 8)

#: argon2id with RFC 9106's low-memory profile: 64 MiB, 3 passes, 4 lanes.
PROFILE = profiles.RFC_9106_LOW_MEMORY
_hasher = PasswordHasher.from_parameters(PROFILE)
#: Verified against when there is no such account, so that a wrong name costs as much time
#: as a wrong password and response times do not tell which accounts exist.
_DUMMY = _hasher.hash("canasta: no such account")


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


#: argon2 takes 64 MiB and a quarter of a second per check: a burst of sign-ins waits its
#: turn rather than taking the server's memory.
_CHECKS = threading.BoundedSemaphore(4)


def verify_secret(stored: str | None, secret: str) -> bool:
    """Whether ``secret`` matches ``stored`` (always spending the time of one check)."""
    with _CHECKS:
        try:
            return _hasher.verify(stored or _DUMMY, secret) and stored is not None
        except (VerificationError, InvalidHashError):
            return False


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > 200:
        raise InvalidInput("a password may have at most 200 characters")
    return password


def check_pin(pin: str) -> str:
    low, high = PIN_DIGITS
    if not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
        raise InvalidInput(f"a PIN is {low} to {high} digits")
    if len(set(pin)) == 1 or pin in "0123456789" or pin in "9876543210":
        raise InvalidInput("a PIN of one repeated digit or a run of digits is too easy to guess")
    return pin


def lock_after(failures: int, now: datetime) -> str | None:
    """When sign-in opens again after ``failures`` wrong attempts in a row (None: not locked)."""
    if failures < MAX_FAILURES or failures % MAX_FAILURES:
        return None
    locks = failures // MAX_FAILURES
    period = min(FIRST_LOCK * (1 << min(locks - 1, 16)), LONGEST_LOCK)
    return (now + period).isoformat(timespec="seconds")


def locked(until: str | None, now: datetime) -> bool:
    return until is not None and datetime.fromisoformat(until) > now


def utc_now() -> datetime:
    return datetime.now(UTC)
