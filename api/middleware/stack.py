"""The middleware stack of the app, outermost first:

request context (id, headers, access log, metrics) -> trusted hosts -> CORS -> a WebSocket's
first-message token -> input limits.
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from api.metrics import Metrics
from api.middleware.limits import LimitsMiddleware
from api.middleware.request_context import RequestContextMiddleware
from api.middleware.security_headers import CONSOLE_CSP, WEB_CSP, SecurityHeaders
from api.middleware.trusted_host import TrustedHostMiddleware
from api.middleware.websocket_auth import FirstMessageAuth
from api.web import CONSOLE_PATH, DOCS_PATH
from config.settings import Environment, Settings
from policies.rate_limit import request_client_ip

CORS_HEADERS = ["Authorization", "Content-Type", "If-Match", "If-None-Match", "X-Request-ID"]
CORS_EXPOSED = [
    "X-Request-ID",
    "ETag",
    "Location",
    "Retry-After",
    "RateLimit",
    "RateLimit-Policy",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]


def install_middleware(app: FastAPI, settings: Settings, metrics: Metrics) -> None:
    # add_middleware puts each new layer outside the previous ones: innermost first.
    app.add_middleware(
        LimitsMiddleware,
        body_limit=settings.body_limit_bytes,
        header_limit=settings.header_limit_bytes,
        timeout=settings.request_timeout,
    )
    # Inside the host check: nothing is accepted before it.
    app.add_middleware(FirstMessageAuth, routes=lambda: app.routes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=settings.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_HEADERS,
            expose_headers=CORS_EXPOSED,
            max_age=600,
        )
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    web = {DOCS_PATH: WEB_CSP, CONSOLE_PATH: CONSOLE_CSP}
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        security=SecurityHeaders(web, hsts=settings.env is Environment.PRODUCTION),
        access_log_enabled=settings.access_log,
        client_ip=partial(request_client_ip, settings=settings),
    )
