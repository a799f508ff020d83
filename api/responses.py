"""OpenAPI descriptions of the responses every guarded route can give."""

from typing import Any

from api.schemas.common import Problem

GUARDED_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, invalid, expired or revoked access token"},
    403: {"model": Problem, "description": "Insufficient scope, or the tenant is suspended"},
    404: {"model": Problem, "description": "Unknown tenant, or not the token's tenant"},
    422: {"model": Problem, "description": "The request does not match the schema"},
    429: {"model": Problem, "description": "Rate limit exceeded; see Retry-After"},
}
