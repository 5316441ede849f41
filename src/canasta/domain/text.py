"""Text people type into forms: what a stored value may hold."""

from __future__ import annotations

from canasta.domain.errors import InvalidInput

#: Tab, line feed and carriage return are the only control characters a typed text keeps.
_ALLOWED_CONTROLS = {"\t", "\n", "\r"}


def typed(text: str, what: str) -> str:
    """``text`` unchanged, or a clear refusal when it holds a control character (a NUL,
    which PostgreSQL cannot store in text, or another no one types)."""
    for ch in text:
        if (ch < " " and ch not in _ALLOWED_CONTROLS) or ch == "\x7f":
            raise InvalidInput(
                f"the {what} holds a control character (U+{ord(ch):04X}) that cannot be stored"
            )
    return text
