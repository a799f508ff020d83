"""The caller's own account."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from api.schemas.common import InputModel


class PasswordChange(InputModel):
    # Passwords are taken verbatim: stripping spaces would store a password the user never typed.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    current_password: str = Field(min_length=1, max_length=4096)
    new_password: str = Field(min_length=12, max_length=4096)
