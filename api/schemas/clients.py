"""OAuth2 client bodies: the secret appears only in the create and rotate responses."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, field_validator

from api.schemas.common import InputModel
from policies.scopes import TENANT_SCOPES


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
        unknown = sorted(set(scopes) - TENANT_SCOPES)
        if unknown:
            raise ValueError(f"unknown scope(s): {' '.join(unknown)}")
        return sorted(set(scopes))


class ClientOut(BaseModel):
    client_id: str
    name: str
    description: str | None
    scopes: list[str]
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
