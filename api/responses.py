"""Responses: what every guarded route can answer (for OpenAPI), and JSON bodies made once."""

from collections.abc import Mapping
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel

from api.schemas.common import Problem

GUARDED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, invalid, expired or revoked access token"},
    403: {"model": Problem, "description": "Insufficient scope, or the tenant is suspended"},
    404: {"model": Problem, "description": "Unknown tenant, or not the token's tenant"},
    422: {"model": Problem, "description": "The request does not match the schema"},
    429: {"model": Problem, "description": "Rate limit exceeded; see Retry-After"},
}


def json_body(
    model: BaseModel, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """`model` as JSON, serialized by pydantic once. Returned from a handler whose route
    declares `response_model`, it skips FastAPI validating the model again before serializing
    it (a twentieth of an item read); the schema stays in OpenAPI and the contract tests."""
    body = model.__pydantic_serializer__.to_json(model)
    return Response(body, status_code, headers, media_type="application/json")
