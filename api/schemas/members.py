"""Tenant member bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from api.schemas.common import InputModel
from policies.roles import ROLES


def _known_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of: {', '.join(ROLES)}")
    return role


Role = Annotated[str, Field(json_schema_extra={"enum": list(ROLES)}), AfterValidator(_known_role)]
# Deliberately loose (one @, no spaces): the CLI accepts the same, and reserved domains such as
# .test or .local, which strict validators refuse, are fine for invitations on private setups.
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)]


class MemberCreate(InputModel):
    email: Email
    role: Role


class MemberUpdate(InputModel):
    role: Role


class MemberOut(BaseModel):
    user_id: str
    email: str
    role: str
    created_at: datetime


class MemberCreated(MemberOut):
    initial_password: str | None = Field(
        description="One-time password when the email had no account: shown only in this "
        "response; the user changes it with POST /v1/me/password"
    )


class MemberPage(BaseModel):
    items: list[MemberOut]
    next_cursor: str | None
