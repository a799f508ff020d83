"""A WebSocket whose handshake carries no token may send it as its first message.

Browsers cannot set an Authorization header on a WebSocket, and a token in the query string
would land in access logs. `Sec-WebSocket-Protocol: bearer, <token>` works (auth/principal.py);
so does this: the handshake is accepted, the first message, within FIRST_MESSAGE_SECONDS, must be
`{"type": "authorization", "token": "<access token>"}`, and the app then runs as if the token had
come in an Authorization header, through the very same guard stages. A refusal they give (an
HTTP problem before accept) becomes a close: 1008 with the problem's kind and detail as the
reason (1013 for a rate limit, 1011 for a server error).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FIRST_MESSAGE_SECONDS = 5.0
MAX_FIRST_MESSAGE = 16_384
MAX_REASON_BYTES = 123  # RFC 6455: a close frame's reason


def _offers_credentials(scope: Scope) -> bool:
    if any(name == b"authorization" for name, _ in scope["headers"]):
        return True
    offered = list(scope.get("subprotocols") or ())
    return len(offered) == 2 and offered[0].lower() == "bearer"


def _token(message: Message) -> str | None:
    text = message.get("text")
    if not isinstance(text, str) or len(text) > MAX_FIRST_MESSAGE:
        return None
    try:
        body: Any = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("type") != "authorization":
        return None
    token = body.get("token")
    if not isinstance(token, str) or not token or not token.isascii() or " " in token:
        return None
    return token


def close_for(status: int, body: bytes) -> Message:
    """The close that stands for an HTTP refusal once the WebSocket is accepted."""
    code = 1013 if status == 429 else 1011 if status >= 500 else 1008
    try:
        problem = json.loads(body)
        kind = str(problem.get("type", "")).rsplit(":", 1)[-1]
        reason = f"{status} {kind}: {problem.get('detail') or problem.get('title', '')}"
    except (ValueError, AttributeError):
        reason = f"{status}"
    encoded = reason.encode()[:MAX_REASON_BYTES]
    return {"type": "websocket.close", "code": code, "reason": encoded.decode(errors="ignore")}


class FirstMessageAuth:
    """Only for the app's WebSocket routes: any other path is refused by the router at once,
    never held open waiting for a first message."""

    def __init__(self, app: ASGIApp, *, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self._routes = routes
        self._paths: list[re.Pattern[str]] | None = None

    def _is_websocket_route(self, path: str) -> bool:
        if self._paths is None:  # the routes are all included by the first connection
            self._paths = [
                context.path_regex
                for context in iter_route_contexts(self._routes())
                if isinstance(context.original_route, APIWebSocketRoute)
            ]
        return any(pattern.match(path) for pattern in self._paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "websocket"
            or _offers_credentials(scope)
            or not self._is_websocket_route(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        if (await receive())["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        try:
            first = await asyncio.wait_for(receive(), FIRST_MESSAGE_SECONDS)
        except TimeoutError:
            await send(_close(f"no authorization message within {FIRST_MESSAGE_SECONDS:g} s"))
            return
        if first["type"] == "websocket.disconnect":
            return
        token = _token(first)
        if token is None:
            await send(_close('the first message must be {"type": "authorization", "token": ...}'))
            return
        headers = [*scope["headers"], (b"authorization", b"Bearer " + token.encode())]
        await self.app({**scope, "headers": headers}, _replayed_connect(receive), _Accepted(send))


def _close(reason: str) -> Message:
    return {"type": "websocket.close", "code": 1008, "reason": reason}


def _replayed_connect(receive: Receive) -> Receive:
    """The app starts with the handshake it expects; then the client's own messages."""
    connected = False

    async def app_receive() -> Message:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        return await receive()

    return app_receive


class _Accepted:
    """The app's view of a WebSocket this layer accepted already: its accept is dropped, its
    HTTP refusal becomes a close."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self._status = 0
        self._body = bytearray()

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            return
        if kind == "websocket.http.response.start":
            self._status = message["status"]
            return
        if kind == "websocket.http.response.body":
            self._body.extend(message.get("body", b""))
            if not message.get("more_body"):
                await self._send(close_for(self._status, bytes(self._body)))
            return
        await self._send(message)
