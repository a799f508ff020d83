"""Identity errors: raised by auth/, turned into HTTP responses only by api/errors.py."""

from __future__ import annotations

from storage.errors import DomainError

__all__ = ["DomainError", "InvalidToken", "MissingToken", "OAuthError"]


class MissingToken(DomainError):
    """No bearer token came with a request that needs one."""


class InvalidToken(DomainError):
    """A bearer token was sent but is not acceptable; `reason` is for logs and metrics only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OAuthError(DomainError):
    """An RFC 6749 section 5.2 error of the token endpoints; `status` overrides the usual one
    (400, 401 for invalid_client, 429 with `retry_after`)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        retry_after: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.retry_after = retry_after
        self.status = status
