"""Answer only for the configured host names (Host header), as RFC 9457 problems otherwise.

Probes and the metrics endpoint are exempt: kubelets and Prometheus address a pod by its IP.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import problem

EXEMPT_PATHS = frozenset({"/health", "/ready", "/metrics"})


def host_name(value: str) -> str:
    """`Example.com:8000` -> `example.com`, `[::1]:8000` -> `::1`."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class TrustedHostMiddleware:
    def __init__(self, app: ASGIApp, *, allowed_hosts: list[str]) -> None:
        self.app = app
        self.allow_any = "*" in allowed_hosts
        self.exact = frozenset(h.lower() for h in allowed_hosts if not h.startswith("*."))
        self.suffixes = tuple(h[1:].lower() for h in allowed_hosts if h.startswith("*."))

    def allowed(self, host: str) -> bool:
        name = host_name(host)
        return name in self.exact or (bool(self.suffixes) and name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if self.allowed(host) or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        response = problem(
            HTTPConnection(scope),
            400,
            "invalid-host",
            "Invalid host",
            "this server does not serve that host",
        )
        await response(scope, receive, send)
