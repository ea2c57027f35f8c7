"""CRM import: a CSV export of customer records, validated row by row into `CrmRecord`s."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from bot.errors import InputError
from storage.contacts import CrmRecord

COLUMNS = (
    "name",
    "email",
    "x_handle",
    "telegram_handle",
    "company",
    "plan",
    "lifetime_value",
    "last_order_date",
    "order_count",
)
IDENTITY_COLUMNS = ("email", "x_handle", "telegram_handle")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
HANDLE = re.compile(r"^@?[A-Za-z0-9_]{1,64}$")


def _money(value: str) -> Decimal:
    cleaned = value.strip().lstrip("$€£").replace(",", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(f"lifetime_value {value!r} is not a number") from None
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"lifetime_value {value!r} must be a non-negative number")
    return amount.quantize(Decimal("0.01"))


def _record(line: int, row: dict[str, str]) -> CrmRecord:
    def get(column: str) -> str | None:
        value = (row.get(column) or "").strip()
        return value or None

    name = get("name")
    if name is None:
        raise ValueError("name is empty")
    if not any(get(c) for c in IDENTITY_COLUMNS):
        raise ValueError("needs at least one of email, x_handle, telegram_handle to match messages")
    email = get("email")
    if email is not None and not EMAIL.match(email):
        raise ValueError(f"email {email!r} is not an email address")
    for column in ("x_handle", "telegram_handle"):
        handle = get(column)
        if handle is not None and not HANDLE.match(handle):
            raise ValueError(f"{column} {handle!r} is not a handle (letters, digits, _)")
    raw_ltv, raw_date, raw_count = get("lifetime_value"), get("last_order_date"), get("order_count")
    try:
        last_order = date.fromisoformat(raw_date) if raw_date else None
    except ValueError:
        raise ValueError(f"last_order_date {raw_date!r} is not a date (YYYY-MM-DD)") from None
    if raw_count is not None and not raw_count.isdigit():
        raise ValueError(f"order_count {raw_count!r} is not a whole number")
    return CrmRecord(
        line=line,
        name=name,
        email=email,
        x_handle=get("x_handle"),
        telegram_handle=get("telegram_handle"),
        company=get("company"),
        plan=(get("plan") or "").lower() or None,
        lifetime_value=_money(raw_ltv) if raw_ltv else None,
        last_order_date=last_order,
        order_count=int(raw_count) if raw_count is not None else None,
    )


def read_crm_csv(
    stream: BinaryIO, *, name: str = "input"
) -> tuple[list[CrmRecord], list[InputError]]:
    """Every valid record and every error (with its line) of a CRM CSV export.

    A header without ``name`` or without any identity column is one error for the file.
    An identity claimed by two rows is an error on the later row.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        return _read(csv.DictReader(text), name)
    finally:
        text.detach()  # the caller owns the stream


def _read(reader: csv.DictReader[str], name: str) -> tuple[list[CrmRecord], list[InputError]]:
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    if "name" not in header or not any(c in header for c in IDENTITY_COLUMNS):
        return [], [
            InputError(
                f"{name}:1",
                f"CRM header must have 'name' and one of {', '.join(IDENTITY_COLUMNS)}; "
                f"found: {', '.join(header) or 'nothing'}. Columns: {', '.join(COLUMNS)}",
            )
        ]
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        return [], [
            InputError(
                f"{name}:1",
                f"unknown column(s) {', '.join(unknown)}; columns: {', '.join(COLUMNS)}",
            )
        ]
    records: list[CrmRecord] = []
    errors: list[InputError] = []
    claimed: dict[tuple[str, str], int] = {}
    for row in _rows(reader):
        line = reader.line_num
        where = f"{name}:{line}"
        if any("\udc80" <= ch <= "\udcff" for v in row.values() if isinstance(v, str) for ch in v):
            errors.append(InputError(where, "not valid UTF-8"))
            continue
        if None in row:
            errors.append(InputError(where, f"more fields than the header's {len(header)}"))
            continue
        try:
            record = _record(line, row)
        except ValueError as exc:
            errors.append(InputError(where, str(exc)))
            continue
        clash = next((claimed[key] for key in record.identities() if key in claimed), None)
        if clash is not None:
            errors.append(
                InputError(where, f"an email or handle of this row is already on line {clash}")
            )
            continue
        for key in record.identities():
            claimed[key] = line
        records.append(record)
    return records, errors


def _rows(reader: csv.DictReader[str]) -> Iterator[dict[str, str]]:
    for row in reader:
        if any((v or "").strip() for v in row.values() if isinstance(v, str)):
            yield row
