"""Tenant routes: every route under /v1/tenants/{tenant} passes identity, tenant and admission.

A resource router is made by `tenant_router`, which builds the guard into it (policies/guard.py):
identity (token) -> tenant (path == token tid) -> admission (revocation, tenant status, rate
limit: one trip to the guard store) -> the read scope the router declares; write routes add
theirs. A route under the
tenant prefix without that guard fails tests/test_secure_by_default.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Security

from api.responses import GUARDED_RESPONSES
from policies.guard import tenant_guard

TENANT_PREFIX = "/v1/tenants/{tenant}"


def tenant_router(
    prefix: str,
    *,
    tags: list[str],
    read_scopes: Sequence[str],
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """A router for `/v1/tenants/{tenant}<prefix>` whose every route is guarded and needs
    `read_scopes`."""
    return APIRouter(
        prefix=TENANT_PREFIX + prefix,
        tags=list(tags),
        dependencies=[Security(tenant_guard, scopes=list(read_scopes))],
        responses={**GUARDED_RESPONSES, **(responses or {})},
    )
