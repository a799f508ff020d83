"""Platform tenant administration bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field

from api.schemas.common import InputModel
from api.schemas.members import Email
from policies.plans import DEFAULT_PLAN, PLANS, known_plans
from policies.tenancy import SLUG_PATTERN

TenantStatus = Literal["active", "suspended"]


def _known_plan(plan: str) -> str:
    plans = known_plans()
    if plan not in plans:
        raise ValueError(f"plan must be one of: {', '.join(plans)}")
    return plan


# The document lists the built-in plans; a deployment's TENANTGATE_PLAN_LIMITS may add more.
Plan = Annotated[str, Field(json_schema_extra={"enum": list(PLANS)}), AfterValidator(_known_plan)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class TenantCreate(InputModel):
    slug: Annotated[str, Field(pattern=SLUG_PATTERN, description="URL name, a-z 0-9 and '-'")]
    name: Name
    plan: Plan = DEFAULT_PLAN
    owner_email: Email | None = Field(
        default=None,
        description="First owner: an existing user, or a new one invited with a one-time password",
    )


class TenantUpdate(InputModel):
    """Fields left out (or null) stay as they are."""

    name: Name | None = None
    plan: Plan | None = None
    status: TenantStatus | None = Field(
        default=None, description="`suspended` refuses every request and token for the tenant"
    )


class TenantOut(BaseModel):
    slug: str
    name: str
    plan: str
    status: TenantStatus
    created_at: datetime
    updated_at: datetime


class OwnerOut(BaseModel):
    user_id: str
    email: str
    role: str
    initial_password: str | None = Field(
        description="One-time password of a newly created user, shown only in this response"
    )


class TenantCreated(TenantOut):
    owner: OwnerOut | None


class TenantPage(BaseModel):
    items: list[TenantOut]
    next_cursor: str | None
