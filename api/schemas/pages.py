"""Cursor pagination: `limit` 1..100 and an opaque `cursor` taken from the previous page."""

from __future__ import annotations

import base64
import binascii
import re
from functools import partial
from typing import Annotated

from fastapi import Query
from pydantic import AfterValidator

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
_PREFIX = "k1:"


def encode_cursor(key: str) -> str:
    """The last key of a page, wrapped so clients treat it as opaque (not a security boundary)."""
    return base64.urlsafe_b64encode((_PREFIX + key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, key: re.Pattern[str] | None = None) -> str | None:
    """The key inside a cursor; a malformed cursor is a validation error (422), not a 500.

    `key`, when given, is the shape a key must have (e.g. an item id) to be ours.
    """
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("malformed cursor") from None
    found = text.removeprefix(_PREFIX)
    if found == text or not found or (key is not None and not key.fullmatch(found)):
        raise ValueError("malformed cursor")
    return found


LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Page size, 1..{MAX_LIMIT}")]
CURSOR_DESCRIPTION = "`next_cursor` of the previous page"
CursorQuery = Annotated[
    str | None, Query(max_length=200, description=CURSOR_DESCRIPTION), AfterValidator(decode_cursor)
]


def keyed_cursor(key: re.Pattern[str]) -> AfterValidator:
    """Validation for a cursor whose key has a known shape (an item id, a sequence number)."""
    return AfterValidator(partial(decode_cursor, key=key))


def next_cursor(keys: list[str], limit: int) -> str | None:
    """Given the keys of up to limit + 1 fetched rows: the cursor of the next page, if any."""
    return encode_cursor(keys[limit - 1]) if len(keys) > limit else None
