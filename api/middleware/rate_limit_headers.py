"""Rate-limit headers on every response that passed a limiter, whatever answered it.

The limiters leave their counts in the request state (scope["state"]); this layer adds
the headers when the response starts, so a 403 from the scope check, a 404 or 500 from the
handler and the 429 itself carry them as well as a 200.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config.settings import Settings
from policies.plans import configure_plans
from policies.rate_limit import header_values, quotas, trusted_networks, warn_if_state_is_per_worker


class RateLimitHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Every request gets its own copy of the lifespan state, as the ASGI spec asks of servers
        # (uvicorn copies; asgi-lifespan, which the tests use, shares one dict between requests,
        # so one request's verdict or principal would show up in the next).
        scope["state"] = dict(scope.get("state") or {})

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                found = quotas(scope["state"])
                if found:
                    headers = list(message.get("headers", ()))
                    headers += [
                        (name.lower().encode("latin-1"), value.encode("latin-1"))
                        for name, value in header_values(found)
                    ]
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_limits)


def install_rate_limits(app: FastAPI, settings: Settings) -> None:
    """Plan table, proxy list and worker check from settings (bad values fail start-up here),
    and the header layer: call it before any other add_middleware, so it is the innermost
    and sees every response the app itself produces."""
    configure_plans(settings.plan_limits)
    trusted_networks(tuple(settings.trusted_proxies))
    warn_if_state_is_per_worker(settings)
    app.add_middleware(RateLimitHeaders)
