"""Input limits: header size (431), body size (413, with or without Content-Length) and a
deadline for handlers to start their response (503). Each answer is an RFC 9457 problem.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import RETRY_LATER, problem

log = logging.getLogger("tenantgate.limits")


class BodyTooLarge(HTTPException):
    """Raised from `receive` when the body passes the limit; api/errors.py maps it to 413."""

    def __init__(self) -> None:
        super().__init__(413, "Content too large")


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, *, body_limit: int, header_limit: int, timeout: float) -> None:
        self.app = app
        self.body_limit = body_limit
        self.header_limit = header_limit
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = 0
        declared: int | None = None
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
        if header_bytes > self.header_limit:
            await self._reject(scope, receive, send, 431, "headers-too-large", "Headers too large")
            return
        if declared is not None and declared > self.body_limit:
            await self._reject(scope, receive, send, 413, "payload-too-large", "Content too large")
            return
        await self._call_limited(scope, receive, send)

    async def _call_limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        exceeded = False
        started = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_limit:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return
            if message["type"] == "http.response.start":
                started = True
                # The deadline is for producing a response; a started stream (an export) may
                # take longer, and ends when the client goes away.
                deadline.reschedule(None)
                if exceeded and message["status"] != 413:
                    # The app turned the oversized body into another error (e.g. a parse error).
                    replaced = True
                    await self._reject(
                        scope, receive, send, 413, "payload-too-large", "Content too large"
                    )
                    return
            await send(message)

        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                await self.app(scope, limited_receive, tracked_send)
        except TimeoutError:
            if not deadline.expired():
                raise  # the app's own timeout (a driver, a client), not this deadline
            log.warning("request stopped after %.1f s", self.timeout)
            if not started:
                await self._reject(
                    scope,
                    receive,
                    send,
                    503,
                    "timeout",
                    "Request timed out",
                    f"the request took longer than {self.timeout:g} s and was stopped",
                )
        except BodyTooLarge:
            # Whatever caught it first did not answer (the app normally maps it to 413).
            if not started:
                await self._reject(
                    scope, receive, send, 413, "payload-too-large", "Content too large"
                )
        else:
            if exceeded and not started:
                await self._reject(
                    scope, receive, send, 413, "payload-too-large", "Content too large"
                )

    async def _reject(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status: int,
        kind: str,
        title: str,
        detail: str | None = None,
    ) -> None:
        if detail is None:
            limit = self.header_limit if status == 431 else self.body_limit
            detail = f"the limit is {limit} bytes"
        # A timeout is worth retrying; the input limits are not.
        headers = RETRY_LATER if status == 503 else None
        response = problem(Request(scope), status, kind, title, detail, headers=headers)
        await response(scope, receive, send)
