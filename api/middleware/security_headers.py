"""Security headers for every response; the app's own web pages get a CSP that lets them run."""

from __future__ import annotations

Header = tuple[bytes, bytes]

# An API answers JSON: nothing in a response may run, load or be framed.
API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The docs and the console (api/web/): scripts, styles and fonts from this origin only, no
# inline script, calls to this origin only. Swagger UI's stylesheet draws its icons as data:
# images. Forms are submitted by script; a form that would submit itself (script not running)
# is blocked rather than put a password in a URL.
WEB_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"font-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    b"form-action 'none'"
)
# The console writes the page with DOM calls only (no HTML strings): Trusted Types make any
# string-to-HTML sink throw, so an injected event field can never become markup.
CONSOLE_CSP = WEB_CSP + b"; require-trusted-types-for 'script'; trusted-types 'none'"
COMMON: tuple[Header, ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS: Header = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """The headers to add, chosen per path once per request: a web page's path, or the API."""

    def __init__(self, web_paths: dict[str, bytes], *, hsts: bool) -> None:
        base = COMMON + ((HSTS,) if hsts else ())
        self._api = (*base, (b"content-security-policy", API_CSP))
        self._web = [
            (path, path + "/", (*base, (b"content-security-policy", csp)))
            for path, csp in web_paths.items()
        ]

    def for_path(self, path: str) -> tuple[Header, ...]:
        for page, prefix, headers in self._web:
            if path == page or path.startswith(prefix):
                return headers
        return self._api


def merge(headers: list[Header], extra: tuple[Header, ...]) -> list[Header]:
    """Add `extra` headers the response does not set itself (a route may set its own CSP)."""
    present = {name.lower() for name, _ in headers}
    return headers + [header for header in extra if header[0] not in present]
