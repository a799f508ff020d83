"""Security headers for every response; the Swagger UI pages get a CSP that lets them load."""

from __future__ import annotations

Header = tuple[bytes, bytes]

# An API answers JSON: nothing in a response may run, load or be framed.
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# FastAPI's /docs page loads Swagger UI from jsDelivr, starts it with an inline script, and
# fetches /openapi.json. The page embeds no user input, so inline scripts are acceptable there.
DOCS_CSP = (
    b"default-src 'none'; "
    b"script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    b"img-src 'self' data: https://fastapi.tiangolo.com https://cdn.jsdelivr.net; "
    b"font-src 'self' data: https://cdn.jsdelivr.net; "
    b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
COMMON: tuple[Header, ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS: Header = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """The headers to add, chosen per path once per request."""

    def __init__(self, docs_paths: frozenset[str], *, hsts: bool) -> None:
        self._docs_paths = docs_paths
        base = COMMON + ((HSTS,) if hsts else ())
        self._api = (*base, (b"content-security-policy", API_CSP))
        self._docs = (*base, (b"content-security-policy", DOCS_CSP))

    def for_path(self, path: str) -> tuple[Header, ...]:
        return self._docs if path in self._docs_paths else self._api


def merge(headers: list[Header], extra: tuple[Header, ...]) -> list[Header]:
    """Add `extra` headers the response does not set itself (a route may set its own CSP)."""
    present = {name.lower() for name, _ in headers}
    return headers + [header for header in extra if header[0] not in present]
