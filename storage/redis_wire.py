"""A pipelined Redis connection for the guard's one call per request.

redis-py's asyncio client spends about 170 us of CPU on one command (pool checkout, command
objects, response callbacks, release) and still about 40 us each when eight are pipelined.
This connection writes each command as it comes (the commands of one event-loop turn in one
write), hands replies to their callers in order (Redis answers in order) and parses them with
hiredis: about 15-40 us a call on this machine (README, "Admissions on the wire").

redis-py still decides how to reach the server: the address, TLS, credentials and database
come from the client's own connection settings, so a `rediss://`, `unix://` or ACL URL means
the same here as everywhere else. Replies are RESP2. Everything but the hot call keeps using
redis-py.

A call that gets no answer within the timeout fails, and so does every call behind it on this
connection (their replies would come out of order): the connection is dropped and the next call
opens a new one. Errors are redis-py's, so callers handle one family.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.credentials import UsernamePasswordCredentialProvider

Argument = str | bytes | int
# hiredis's stub types its argument as a 1-tuple; it takes any tuple of these.
_pack = cast(Callable[[tuple[Argument, ...]], bytes], hiredis.pack_command)


def _error(reply: hiredis.ReplyError) -> redis_errors.ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return redis_errors.NoScriptError(message)
    return redis_errors.ResponseError(message)


class _Wire(asyncio.Protocol):
    """One connection: futures wait in the order their commands were written."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        # (reply future, deadline) in the order the commands went out.
        self._waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self._outgoing: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self._transport = cast(asyncio.Transport, transport)
        # (asyncio and uvloop both set TCP_NODELAY on TCP connections: no Nagle delays.)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.lost:
            future.set_exception(redis_errors.ConnectionError("the redis connection was lost"))
            return future
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(command)
        self._waiting.append((future, time.monotonic() + self._timeout))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout, self._check_deadline)
        return future

    def _flush(self) -> None:
        outgoing, self._outgoing = self._outgoing, []
        if self._transport is not None and not self.lost:
            self._transport.write(b"".join(outgoing))

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                future, _ = self._waiting.popleft()
                if future.done():  # its caller gave up
                    continue
                if isinstance(reply, hiredis.ReplyError):
                    future.set_exception(_error(reply))
                else:
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as error:  # garbage, or a reply nobody asked
            self._fail(redis_errors.ConnectionError(f"redis protocol error: {error}"))

    def _check_deadline(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        _, deadline = self._waiting[0]
        now = time.monotonic()
        if deadline <= now:
            self._fail(redis_errors.TimeoutError("redis did not answer in time"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(deadline - now, self._check_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(redis_errors.ConnectionError("the redis connection was lost"))

    def _fail(self, error: Exception) -> None:
        """Every waiting call fails with `error`; the connection is not used again."""
        self.lost = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self._fail(redis_errors.ConnectionError("the redis connection was closed"))


class RedisWire:
    """Pipelined calls over one connection, opened on first use and again after a loss."""

    def __init__(self, client: Redis) -> None:
        pool = client.connection_pool
        # The connection redis-py would make, read for its settings only (never connected).
        self._settings = pool.connection_class(**pool.connection_kwargs)
        self._timeout: float = self._settings.socket_timeout or 5.0
        self._wire: _Wire | None = None
        self._opening: asyncio.Lock | None = None

    async def call(self, *arguments: Argument) -> Any:
        wire = self._wire
        if wire is None or wire.lost:
            wire = await self._open()
        return await wire.send(_pack(arguments))

    async def _open(self) -> _Wire:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._wire is not None and not self._wire.lost:
                return self._wire
            wire = await self._connected()
            self._wire = wire
            return wire

    async def _connected(self) -> _Wire:
        """A new, authenticated connection; every failure is one of redis-py's errors."""
        wire: _Wire | None = None
        try:
            async with asyncio.timeout(self._settings.socket_connect_timeout or self._timeout):
                wire = await self._connect()
                await self._prepare(wire)
        except BaseException as error:
            if wire is not None:
                wire.close()
            if isinstance(error, asyncio.TimeoutError):  # builtin, raised by asyncio.timeout
                raise redis_errors.TimeoutError(
                    "redis did not accept a connection in time"
                ) from error
            if isinstance(error, OSError):
                raise redis_errors.ConnectionError(f"redis is out of reach: {error}") from error
            raise
        return wire

    async def _connect(self) -> _Wire:
        loop = asyncio.get_running_loop()
        settings = self._settings
        if isinstance(settings, UnixDomainSocketConnection):
            _, wire = await loop.create_unix_connection(lambda: _Wire(self._timeout), settings.path)
            return wire
        if not isinstance(settings, Connection):
            raise redis_errors.ConnectionError(f"unsupported redis connection: {settings!r}")
        context: ssl.SSLContext | None = None
        if isinstance(settings, SSLConnection):
            context = settings.ssl_context.get()
        _, wire = await loop.create_connection(
            lambda: _Wire(self._timeout), settings.host, settings.port, ssl=context
        )
        return wire

    async def _prepare(self, wire: _Wire) -> None:
        """Credentials and database, as redis-py would send them (RESP2)."""
        settings = self._settings
        if settings.credential_provider or settings.username or settings.password:
            provider = settings.credential_provider or UsernamePasswordCredentialProvider(
                settings.username, settings.password
            )
            credentials = await provider.get_credentials_async()
            await wire.send(_pack(("AUTH", *credentials)))
        if settings.db:
            await wire.send(_pack(("SELECT", settings.db)))

    def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
            self._wire = None


class WireScript:
    """Calls of one Lua script on the wire: EVALSHA, or EVAL for a call that met a Redis that
    forgot the script (restart, SCRIPT FLUSH); EVAL runs it and caches it for the calls after."""

    def __init__(self, wire: RedisWire, script: str) -> None:
        self._wire = wire
        self._script = script
        self._sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        try:
            return await self._wire.call("EVALSHA", self._sha, len(keys), *keys, *args)
        except redis_errors.NoScriptError:
            return await self._wire.call("EVAL", self._script, len(keys), *keys, *args)
