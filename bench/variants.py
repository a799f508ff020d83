"""The real app with the limiter taken out, for the with/without comparison of `make bench`.

The guard store is swapped for one that admits everything without counting: no counters, no
revocation look-ups, no headers. Everything else (identity, tenant, scopes, handler, the other
middleware, the JSON access log `tenantgate serve` configures) is the app as served.
FastAPI's dependency_overrides would be the obvious tool, but it re-inspects the override on
every request and would make this variant the slower one.
`uvicorn bench.variants:without_limiter --factory`.
"""

from __future__ import annotations

import logging.config
from collections.abc import Sequence

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from api.app import create_app
from api.observability import logging_config
from config.settings import get_settings
from storage.guard_state import Admission, Outcome, Tally, TenantState, Verdict, Window


class AdmitEverything:
    """A GuardStore that neither counts nor remembers anything."""

    async def admit(self, admission: Admission) -> Verdict:
        return Verdict(Outcome.OK)

    async def hit(self, tag: str, windows: Sequence[tuple[str, Window]]) -> Tally:
        return Tally(True, ())

    async def put_tenant(self, tag: str, state: TenantState) -> None:
        return None

    async def revoke_token(self, tag: str, jti: str, ttl_seconds: int) -> None:
        return None

    async def set_subject_revision(
        self, tag: str, subject: str, revision: int, ttl_seconds: int
    ) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def without_limiter() -> ASGIApp:
    settings = get_settings()
    # As `tenantgate serve` does: one JSON access line per request (plain uvicorn logs nothing).
    logging.config.dictConfig(logging_config(settings))
    app: FastAPI = create_app(settings)
    unlimited = AdmitEverything()

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        # The lifespan installs the real store; swap it once the app serves requests.
        if scope["type"] == "http" and app.state.guard is not unlimited:
            real = app.state.guard
            app.state.guard = unlimited
            await real.close()
        await app(scope, receive, send)

    return serve


def bare() -> FastAPI:
    """FastAPI with nothing but /health: the reference the performance budget is relative to."""
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
