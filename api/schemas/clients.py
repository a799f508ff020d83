"""OAuth2 client bodies: the secret appears only in the create and rotate responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import InputModel
from policies.plans import window
from policies.scopes import TENANT_SCOPES

RATE_LIMIT = (
    'Requests per window for this client, in the plan\'s syntax ("30/minute"); at most the '
    "plan's per-principal limit; null removes the override"
)


def _known_scopes(scopes: list[str]) -> list[str]:
    unknown = sorted(set(scopes) - TENANT_SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s): {' '.join(unknown)}")
    return sorted(set(scopes))


class ClientCreate(InputModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    scopes: list[str] = Field(
        min_length=1,
        max_length=len(TENANT_SCOPES),
        description="Scopes the client may request; at most the creator's own",
    )

    @field_validator("scopes")
    @classmethod
    def _known(cls, scopes: list[str]) -> list[str]:
        return _known_scopes(scopes)


class ClientUpdate(InputModel):
    """Only the fields sent change; `description` and `rate_limit` may be null to clear them."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=1000)
    scopes: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=len(TENANT_SCOPES),
        description="The new scope set; narrowing it stops the client's existing tokens",
    )
    rate_limit: str | None = Field(default=None, max_length=100, description=RATE_LIMIT)

    @field_validator("name")
    @classmethod
    def _name_not_null(cls, name: str | None) -> str:
        if name is None:
            raise ValueError("may be left out, not null")
        return name

    @field_validator("scopes")
    @classmethod
    def _known(cls, scopes: list[str] | None) -> list[str]:
        if scopes is None:
            raise ValueError("may be left out, not null")
        return _known_scopes(scopes)

    @field_validator("rate_limit")
    @classmethod
    def _limit_syntax(cls, limit: str | None) -> str | None:
        if limit is not None:
            try:
                parsed = window(limit)
            except ValueError:
                raise ValueError('not a rate limit; write it like "30/minute"') from None
            if parsed.limit < 1:
                raise ValueError("a rate limit allows at least one request")
        return limit

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


class ClientOut(BaseModel):
    client_id: str
    name: str
    description: str | None
    scopes: list[str]
    rate_limit: str | None = Field(description="Its own rate limit, below the plan's; or null")
    created_by: str = Field(description="Subject of whoever created it (a user id, or `cli`)")
    created_at: datetime
    last_used_at: datetime | None = Field(description="When it last obtained a token")


class ClientCreated(ClientOut):
    client_secret: str = Field(description="Shown once; store it in a secret manager")


class ClientSecretOut(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; the previous secret no longer works")


class ClientList(BaseModel):
    clients: list[ClientOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
