"""Which request bodies a JSON route cannot read: 415 Unsupported Media Type, not 422.

FastAPI parses a body as JSON only when its Content-Type says so (`application/json` or
`application/*+json`; it is strict about a missing one too) and otherwise hands the raw bytes to
validation, which fails as if the JSON were wrong. The client's mistake is the media type, so it
should hear that (RFC 9110 section 15.5.16), with `Accept` naming the one the route reads.
"""

from __future__ import annotations

from email.message import Message

from fastapi import params
from starlette.requests import HTTPConnection

JSON = "application/json"


def is_json(content_type: str | None) -> bool:
    """The test FastAPI applies before it parses a body as JSON."""
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _has_body(connection: HTTPConnection) -> bool:
    length = connection.headers.get("content-length", "0").strip()
    chunked = "transfer-encoding" in connection.headers
    return chunked or (length.isdigit() and int(length) > 0)


def unreadable_json_body(connection: HTTPConnection) -> bool:
    """The matched route reads a JSON body and the request sent one of another media type."""
    route = connection.scope.get("route")
    field = getattr(route, "body_field", None)
    if field is None or isinstance(field.field_info, params.Form):
        return False
    return _has_body(connection) and not is_json(connection.headers.get("content-type"))
