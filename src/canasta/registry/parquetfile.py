"""Reading registrations from Parquet, into the same rows a CSV file gives.

Registries exported from other systems often come as Parquet. DuckDB (already canasta's
engine for cycle runs) reads it without another dependency. Every value becomes the text a
CSV file would have held: dates as ISO dates, numbers as digits, nulls as empty, so the same
validation applies and its errors name the same rows (a Parquet file has no lines; ``line``
is 0). The columns are checked as a CSV header is: exactly the expected ones, undeclared and
protected ones refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from canasta.domain.errors import ImportRejected, RowProblem
from canasta.registry.csvfile import CsvRow, check_header


def read_parquet(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> list[CsvRow]:
    """Every row of the Parquet file at ``path``, in file order, as text values."""
    name = path.name
    try:
        with duckdb.connect() as con:
            relation = con.read_parquet(str(path))
            columns = [c.strip().lower() for c in relation.columns]
            check_header(name, columns, required, optional)
            records = relation.fetchall()
    except duckdb.Error as error:
        message = str(error).splitlines()[0]
        raise ImportRejected(
            f"{name} is not a readable Parquet file",
            [RowProblem(name, 0, "(parquet)", f"cannot be read as Parquet: {message}")],
        ) from None
    return [
        CsvRow(number, 0, {column: _text(value) for column, value in zip(columns, record, strict=True)})
        for number, record in enumerate(records, start=1)
    ]


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
