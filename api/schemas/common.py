"""Shared schema pieces."""

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError

# The validation error type of a NUL character: api/errors.py answers it with 400 `invalid-text`,
# as it answers a NUL in a path or query, instead of 422.
NUL_ERROR = "invalid_text"
NUL_MESSAGE = "text must not contain NUL characters"


def contains_nul(value: Any) -> bool:
    """True when a NUL character hides anywhere in a decoded JSON value (PostgreSQL refuses it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(v) for v in value)
    return False


class InputModel(BaseModel):
    """Request bodies: unknown fields are an error, never silently ignored or applied."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # The whole raw body, keys and nested values included, before any field is read.
        if contains_nul(value):
            raise PydanticCustomError(NUL_ERROR, NUL_MESSAGE)
        return value


class Problem(BaseModel):
    """RFC 9457 problem details, as every non-token error is returned."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
