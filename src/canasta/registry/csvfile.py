"""Reading CSV files people made by hand, with errors that say file, row, line and field.

``read_csv`` turns bytes into rows without trusting anything: the encoding must be UTF-8
(a byte-order mark is accepted), the header must hold exactly the expected columns, and a
malformed quote is reported where it is. Nothing here touches the database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from canasta.domain.errors import ImportRejected, RowProblem
from canasta.domain.firewall import firewall_reason, protected_category


@dataclass(frozen=True, slots=True)
class CsvRow:
    """A data row: ``row`` counts data rows from 1, ``line`` is the file line it starts on."""

    row: int
    line: int
    values: dict[str, str]


def decode(data: bytes, filename: str) -> str:
    """UTF-8 text, or an error naming the line and column of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ImportRejected(
            f"{filename} is not UTF-8 text",
            [
                RowProblem(
                    filename,
                    0,
                    "(encoding)",
                    f"byte 0x{data[exc.start]:02X} at line {line}, column {column} is not "
                    "UTF-8; save the file as UTF-8",
                    line=line,
                )
            ],
        ) from None


def read_csv(
    text: str,
    filename: str,
    required: Sequence[str],
    optional: Sequence[str] = (),
    problems: list[RowProblem] | None = None,
) -> Iterator[CsvRow]:
    """Yield the rows of ``text``. Raises ``ImportRejected`` for a bad header or a broken
    quote. A row with the wrong number of values is added to ``problems`` and skipped, so
    reading goes on and every bad row is reported (without ``problems`` it raises);
    problems in values are the caller's to find, row by row."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRejected(
            f"{filename} is empty", [RowProblem(filename, 0, "(header)", "the file is empty")]
        ) from None
    except csv.Error as exc:
        raise _broken(filename, 0, reader.line_num, exc) from None
    names = [name.strip().lower() for name in header]
    check_header(filename, names, required, optional)
    row = 0
    while True:
        start_line = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _broken(filename, row + 1, reader.line_num, exc) from None
        if not record or all(not value.strip() for value in record):
            continue  # blank lines are not rows
        row += 1
        if len(record) != len(names):
            problem = RowProblem(
                filename,
                row,
                "(row)",
                f"has {len(record)} values but the header has {len(names)} columns",
                line=start_line,
            )
            if problems is None:
                raise ImportRejected(f"{filename} has a row with the wrong number of values", [problem])
            problems.append(problem)
            continue
        yield CsvRow(row, start_line, dict(zip(names, record, strict=True)))


def check_header(filename: str, names: list[str], required: Sequence[str], optional: Sequence[str]) -> None:
    problems: list[RowProblem] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(RowProblem(filename, 0, name, "the column appears twice in the header"))
        seen.add(name)
        if name not in required and name not in optional:
            match = protected_category(name)
            reason = (
                firewall_reason(name, match, "a registry column")
                if match
                else "is not a column canasta knows; undeclared columns are refused, not kept"
            )
            problems.append(RowProblem(filename, 0, name or "(empty)", reason, line=1))
    problems.extend(
        RowProblem(filename, 0, name, "the required column is missing from the header", line=1)
        for name in required
        if name not in seen
    )
    if problems:
        raise ImportRejected(f"{filename} has a bad header", problems)


def _broken(filename: str, row: int, line: int, exc: csv.Error) -> ImportRejected:
    return ImportRejected(
        f"{filename} is not well-formed CSV",
        [RowProblem(filename, row, "(csv)", f"{exc} (near line {line})", line=line)],
    )
