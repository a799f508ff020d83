"""create_app(settings): the one place where layers are wired into an ASGI application."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import install_error_handlers
from api.metrics import Metrics
from api.middleware.rate_limit_headers import install_rate_limits
from api.middleware.stack import install_middleware
from api.openapi_contract import make_exact
from api.routers import (
    access,
    account,
    audit,
    audit_stream,
    clients,
    health,
    items,
    me,
    members,
    oauth,
    platform,
    platform_audit,
    reports,
    token,
)
from api.routers import metrics as metrics_router
from api.runtime import lifespan
from api.web import install_web
from auth.principal import get_principal
from config.settings import Settings, get_settings
from policies.access_matrix import route_matrix
from policies.scopes import SCOPES

# Every route of these routers goes on the app itself, in this order: the probes (cheap, and
# polled), /v1/me (every client's first call), the tenant data, then the rest. The app tries
# its routes in order, one regular expression each. FastAPI 0.165 includes a router lazily
# instead: each request asks every included router in turn whether the path is its own (about
# 6 us each), then matches the chosen router's routes twice; plain routes made every request
# about 9 % cheaper. Tenant resource routers carry their guard (api/routers/tenants.py).
ROUTERS = (
    health.router,
    me.router,
    items.router,
    reports.router,
    members.router,
    clients.router,
    audit.router,
    access.router,
    audit_stream.router,
    token.router,
    oauth.router,
    account.router,
    platform.router,
    platform_audit.router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics = Metrics()
    app = FastAPI(
        title="tenantgate",
        version="0.1.0",
        summary="Authenticated multi-tenant API platform",
        lifespan=metrics.lifespan(lifespan(settings)),
        debug=False,
        # /docs is served from api/web (Swagger UI from a package, no CDN); no ReDoc.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    install_error_handlers(app)
    app.state.metrics = metrics
    install_rate_limits(app, settings)
    install_middleware(app, settings, metrics)
    routers = [*ROUTERS, metrics_router.router] if settings.metrics_enabled else ROUTERS
    for router in routers:
        # Plain routes on the app (see ROUTERS): no router is included.
        app.router.routes.extend(router.routes)
    install_web(app)
    _document_scopes(app)
    return app


def _document_scopes(app: FastAPI) -> None:
    """Publish the scope catalogue in the OAuth2 password flow, so /docs can ask for scopes,
    and each route's required scopes in its security requirement (the scope checks read the
    verified principal rather than depending on the scheme, so FastAPI cannot see them)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schemes = schema.get("components", {}).get("securitySchemes", {})
            for scheme in schemes.values():
                if scheme.get("type") == "oauth2":
                    scheme["flows"]["password"]["scopes"] = dict(SCOPES)
            for route in route_matrix(app.routes):
                operation = schema["paths"].get(route.path, {}).get(route.method.lower())
                if operation is not None and route.authenticated:
                    operation["security"] = [{get_principal.scheme_name: sorted(route.scopes)}]
            app.openapi_schema = make_exact(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
