"""Where things are in a TOML file a person wrote: for errors that name line and column.

``tomllib`` reports a decode error's place only in its message, and says nothing of where a
parsed key was written; schema, policy and report files all need both. No I/O.
"""

from __future__ import annotations

import re
import tomllib

_AT = re.compile(r"line (\d+), column (\d+)")


def error_position(error: tomllib.TOMLDecodeError) -> tuple[int, int]:
    """Line and column of a decode error (1, 1 when the message does not say)."""
    found = _AT.search(str(error))
    return (int(found.group(1)), int(found.group(2))) if found else (1, 1)


def key_position(text: str, key: str) -> tuple[int, int]:
    """Line and column where the top-level ``key = …`` is written (1, 1 when absent)."""
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number, line.index(key) + 1
    return 1, 1
