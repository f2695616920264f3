"""A batch's items from its upload: a JSON list, JSON Lines text or CSV text (header row first).

Each item is one run's input: a JSON value per list entry or JSONL line; a CSV row becomes an
object from the header's column names to the row's cells (strings), so an agent whose input
model has string fields (or fields pydantic coerces from strings) takes CSV as is.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from steward.errors import ApiError

MAX_ITEMS = 100_000


def invalid(detail: str) -> ApiError:
    return ApiError(422, "invalid-batch", "Invalid batch", detail)


def parse_jsonl(text: str) -> list[Any]:
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(json.loads(line))
        except ValueError as exc:
            raise invalid(f"jsonl line {number} is not JSON: {exc}") from None
    return items


def parse_csv(text: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text))
    try:
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise invalid(f"csv line {reader.line_num}: {exc}") from None
    if not rows:
        return []
    header = rows[0]
    if len(set(header)) != len(header) or any(not name for name in header):
        raise invalid("csv header row must name every column once")
    items = []
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise invalid(f"csv row {number} has {len(row)} cells; the header has {len(header)}")
        items.append(dict(zip(header, row, strict=True)))
    return items


def items_of(items: list[Any] | None, jsonl: str | None, csv_text: str | None) -> list[Any]:
    given = [value for value in (items, jsonl, csv_text) if value is not None]
    if len(given) != 1:
        raise invalid("give exactly one of `items`, `jsonl` or `csv`")
    if items is not None:
        parsed = items
    elif jsonl is not None:
        parsed = parse_jsonl(jsonl)
    else:
        parsed = parse_csv(csv_text or "")
    if not parsed:
        raise invalid("the batch has no items")
    if len(parsed) > MAX_ITEMS:
        raise invalid(f"a batch holds at most {MAX_ITEMS} items, not {len(parsed)}")
    return parsed
