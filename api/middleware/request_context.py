"""The outermost middleware: request id, security headers, access log, metrics, last-resort 500.

One pure ASGI layer does all of it, so a request pays for one extra `send` wrapper, not four.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import problem
from api.metrics import Metrics
from api.middleware import access_log
from api.middleware.request_id import REQUEST_ID_HEADER, request_id
from api.middleware.security_headers import SecurityHeaders, merge
from api.observability import request_id_var

log = logging.getLogger("tenantgate.errors")

ClientIp = Callable[[Scope], str | None]


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        security: SecurityHeaders,
        access_log_enabled: bool,
        client_ip: ClientIp,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.security = security
        self.access_log_enabled = access_log_enabled
        self.client_ip = client_ip
        self.routes = access_log.RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_at = time.perf_counter()
        rid = request_id(scope["headers"])
        # A fresh dict per request (as uvicorn does): request.state must not leak between
        # requests when a server or test harness hands every request the same lifespan state.
        scope["state"] = {**scope.get("state", {}), "request_id": rid}
        token = request_id_var.set(rid)
        extra = ((REQUEST_ID_HEADER, rid.encode("ascii")), *self.security.for_path(scope["path"]))
        status = 0

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = merge(list(message.get("headers", ())), extra)
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception as error:
            if status:
                raise  # the response has begun; the server can only drop the connection
            # In the response neither a stack trace nor the message; in the log the type and the
            # frames (exc_info), never the message (it may quote SQL parameters).
            log.error(
                "unhandled %s on %s", type(error).__name__, scope.get("method"), exc_info=True
            )
            response = problem(Request(scope), 500, "internal-error", "Internal error")
            await response(scope, receive, send_with_context)
        finally:
            self._finish(scope, status or 500, time.perf_counter() - started_at)
            request_id_var.reset(token)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket: its own request id and state, the security headers on the handshake's
        answer, and one access-log line when it ends (status 101 once accepted)."""
        started_at = time.perf_counter()
        rid = request_id(scope["headers"])
        scope["state"] = {**scope.get("state", {}), "request_id": rid}
        token = request_id_var.set(rid)
        extra = ((REQUEST_ID_HEADER, rid.encode("ascii")), *self.security.for_path(scope["path"]))
        status = 0
        closed: int | None = None

        async def send_with_context(message: Message) -> None:
            nonlocal status, closed
            kind = message["type"]
            if kind in ("websocket.accept", "websocket.http.response.start"):
                status = 101 if kind == "websocket.accept" else message["status"]
                message["headers"] = merge(list(message.get("headers", ())), extra)
            elif kind == "websocket.close":
                closed = message.get("code", 1000)
                status = status or 403  # closed before accept: the server answers 403
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception as error:  # noqa: BLE001 - the last resort: logged without a trace
            log.error("unhandled %s on a WebSocket", type(error).__name__)
            if not status:
                await send_with_context({"type": "websocket.close", "code": 1011})
        finally:
            self._finish_websocket(scope, status or 500, closed, time.perf_counter() - started_at)
            request_id_var.reset(token)

    def _finish_websocket(
        self, scope: Scope, status: int, closed: int | None, seconds: float
    ) -> None:
        state: dict[str, Any] = scope["state"]
        verdict = state.get("rate_limit")
        if verdict is not None:
            self.metrics.observe_admission(verdict)  # the handshake counted as a request
        if self.access_log_enabled and access_log.log.isEnabledFor(logging.INFO):
            entry = access_log.record(
                {**scope, "method": "WS"},
                route=self.routes.template(scope),
                status=status,
                duration_ms=seconds * 1000,
                ip=self.client_ip(scope),
            )
            entry["close_code"] = closed
            access_log.emit(entry)

    def _finish(self, scope: Scope, status: int, seconds: float) -> None:
        route = self.routes.template(scope)
        metrics = self.metrics
        metrics.observe_request(scope["method"], route, status, seconds)
        state: dict[str, Any] = scope["state"]
        verdict = state.get("rate_limit")
        if verdict is not None:
            metrics.observe_admission(verdict)
        grant_type = state.get("grant_type")  # set by POST /token
        if grant_type and 200 <= status < 300:
            metrics.token_issued(grant_type)
        app_state = getattr(scope.get("app"), "state", None)
        metrics.observe_guard(getattr(app_state, "guard", None))
        if self.access_log_enabled and access_log.log.isEnabledFor(logging.INFO):
            access_log.emit(
                access_log.record(
                    scope,
                    route=route,
                    status=status,
                    duration_ms=seconds * 1000,
                    ip=self.client_ip(scope),
                )
            )
