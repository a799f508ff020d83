"""Conditional reads (RFC 9110 section 13.1.2): ETags, If-None-Match, 304 Not Modified."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Header

IfNoneMatch = Annotated[
    str | None,
    Header(
        max_length=2000,
        description="Answer 304 Not Modified if the current ETag is one of these (or `*`)",
    ),
]
NOT_MODIFIED_RESPONSE: dict[int | str, dict[str, str]] = {
    304: {"description": "Not modified: the If-None-Match tag is still current (no body)"}
}


class NotModified(Exception):
    """The client's copy is current: api/errors.py answers 304 with the tag and no body."""

    def __init__(self, etag: str) -> None:
        super().__init__(etag)
        self.etag = etag


def weak_etag(content: bytes) -> str:
    """A weak tag: equal for semantically equal bodies (a report regenerated from the same data
    differs only in its `generated_at`)."""
    return 'W/"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _opaque(tag: str) -> str:
    return tag.strip().removeprefix("W/")


def none_match(header: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/"x" and "x" match."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    current = _opaque(etag)
    return any(_opaque(tag) == current for tag in header.split(","))


def unless_current(header: str | None, etag: str) -> None:
    """Raise NotModified when the client already holds `etag`."""
    if none_match(header, etag):
        raise NotModified(etag)
