"""Limits on guessing secrets other than a password at /token: client secrets and, on
`POST /v1/me/password`, the current password behind a stolen access token.

A confidential client's authentication (client_credentials, /revoke, /introspect) counts per
client id and in the same per-IP counter as password attempts, so a guessed secret cannot be
tried faster than a guessed password, nor faster by switching between the two.
"""

from __future__ import annotations

import logging
from typing import cast

from fastapi import Request

from auth.errors import OAuthError
from config.settings import Settings
from policies.errors import RateLimited
from policies.plans import window
from policies.rate_limit import (
    IP_POLICY,
    LOGIN_STATE,
    Quota,
    ip_bucket,
    keyed_hash,
    request_client_ip,
    retry_after,
)
from storage.guard_state import LOGIN_TAG, GuardStore

log = logging.getLogger("tenantgate.rate_limit")

CLIENT_POLICY = "client"


def _parts(request: Request) -> tuple[Settings, GuardStore]:
    return cast(Settings, request.app.state.settings), cast(GuardStore, request.app.state.guard)


async def limit_client_attempt(request: Request, client_id: str) -> None:
    """Count one client authentication per client IP and per client id; 429 over either."""
    settings, store = _parts(request)
    ip = request_client_ip(request.scope, settings)
    client_key = keyed_hash(settings.system_key, "client", client_id)
    tally = await store.hit(
        LOGIN_TAG,
        [
            (f"ip:{ip_bucket(ip)}", window(settings.login_rate_limit_ip)),
            (f"client:{client_key}", window(settings.login_rate_limit_client)),
        ],
    )
    shown = (Quota(IP_POLICY, tally.counters[0]), Quota(CLIENT_POLICY, tally.counters[1]))
    setattr(request.state, LOGIN_STATE, shown)
    if not tally.allowed:
        seconds = retry_after(shown)
        log.info("client authentication attempts limited")
        raise OAuthError(
            "invalid_request",
            f"too many client authentication attempts; retry after {seconds} seconds",
            retry_after=seconds,
        )


async def limit_password_change(request: Request, subject: str) -> None:
    """Count one password change attempt of this user; a 429 problem over the limit."""
    settings, store = _parts(request)
    key = keyed_hash(settings.system_key, "password-change", subject)
    tally = await store.hit(
        LOGIN_TAG, [(f"password:{key}", window(settings.password_change_rate_limit))]
    )
    if not tally.allowed:
        log.info("password change attempts limited")
        raise RateLimited(tally.counters, names=("password_change",))
