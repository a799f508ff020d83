"""GET /metrics: Prometheus text format, summed over every worker process."""

from __future__ import annotations

import hmac
from typing import cast

from fastapi import APIRouter, Request, Response

from api.errors import problem
from api.metrics import CONTENT_TYPE, metrics_of
from config.settings import Settings

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics of every worker (a metrics token when one is configured)."""
    settings = cast(Settings, request.app.state.settings)
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        sent = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(sent, expected):
            return problem(
                request,
                401,
                "unauthenticated",
                "Authentication required",
                "send the metrics token: Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="tenantgate-metrics"'},
            )
    metrics = metrics_of(request)
    # Counters copied from the guard store after each request: bring them up to date first.
    metrics.observe_guard(getattr(request.app.state, "guard", None))
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)
