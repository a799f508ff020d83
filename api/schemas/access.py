"""Access evaluation: the question (principal, method, path) and the guard's answer."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import InputModel
from policies.access_matrix import WEBSOCKET
from policies.evaluation import Evaluation, Reason

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", WEBSOCKET})


class AccessQuery(InputModel):
    principal: str = Field(
        min_length=1,
        max_length=100,
        description="A user id (`usr_...`) or `client:<client_id>` of this tenant",
    )
    method: str = Field(description="An HTTP method, or WS for a WebSocket route")
    path: str = Field(
        min_length=1,
        max_length=2000,
        pattern=r"^/\S*$",
        description="A request path (`/v1/tenants/acme/items/itm_...`) or a route template "
        "(`/v1/tenants/{tenant}/items/{item_id}`, `{tenant}` standing for this tenant)",
    )

    @field_validator("method")
    @classmethod
    def _method(cls, method: str) -> str:
        method = method.upper()
        if method not in METHODS:
            raise ValueError(f"one of {', '.join(sorted(METHODS))}")
        return method


class ReasonOut(BaseModel):
    code: str = Field(
        description="tenant_mismatch, tenant_suspended, membership_removed, client_revoked, "
        "user_inactive, one_time_password, missing_scope, no_route or method_not_allowed"
    )
    stage: str = Field(description="route, identity, tenant, admission or scope")
    status: int = Field(description="What a live request gets from that stage")
    detail: str

    @classmethod
    def of(cls, reason: Reason) -> ReasonOut:
        return cls(code=reason.code, stage=reason.stage, status=reason.status, detail=reason.detail)


class AccessEvaluationOut(BaseModel):
    principal: str
    allowed: bool = Field(description="Whether every guard stage lets the request through")
    route: str | None = Field(description="`METHOD /template` of the route reached, if any")
    required_scopes: list[str]
    granted_scopes: list[str] = Field(description="What a token of the principal carries now")
    missing_scopes: list[str]
    role: str | None = Field(description="The member's role; null for a client")
    reasons: list[ReasonOut] = Field(
        description="Why not, in the order the stages run (the first is what a live request "
        "gets); empty when allowed"
    )

    @classmethod
    def of(cls, evaluation: Evaluation) -> AccessEvaluationOut:
        return cls(
            principal=evaluation.principal,
            allowed=evaluation.allowed,
            route=evaluation.route,
            required_scopes=sorted(evaluation.required_scopes),
            granted_scopes=sorted(evaluation.granted_scopes),
            missing_scopes=sorted(evaluation.missing_scopes),
            role=evaluation.role,
            reasons=[ReasonOut.of(reason) for reason in evaluation.reasons],
        )
