"""On a Redis Cluster: calls of one Lua script in the same event-loop turn share pipelines.

(One Redis is served by the pipelined wire, storage/redis_wire.py, which redis-py's cluster
client cannot replace here: it follows the cluster's slot map and MOVED answers.) Under load many
requests reach admission in the same turn of the loop. Sending each script call on its own costs
a pool checkout, a write, a read and redis-py's bookkeeping per request; sent together they cost
that once. Each call is still its own script execution in Redis, so every
count stays exact across processes (no local counters, nothing deferred).

EVALSHA is sent as a plain command (redis-py's pipelined `Script` would first ask `SCRIPT
EXISTS`, one more round trip per batch); a Redis that forgot the script (restart, SCRIPT FLUSH,
a replica promoted in a cluster) answers NOSCRIPT, and those calls are retried once after
`SCRIPT LOAD`.

On a Redis Cluster the calls of one turn are split by the node that serves their key's slot,
and each node's share is its own pipeline, all sent at once: every call still costs one round
trip (to its node), and a node that fails fails only the calls sent to it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as LostConnection
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as LostReply

from storage.redis_client import RedisClient, Rediscovery, load_script, node_of

Call = tuple[Sequence[str], Sequence[str | int], "asyncio.Future[Any]"]


class ScriptBatcher:
    def __init__(self, redis: RedisClient, script: str, rediscovery: Rediscovery) -> None:
        """`rediscovery` is told of failed round trips (its owner closes it)."""
        self._redis = redis
        self._rediscovery = rediscovery
        self._script = script
        self._sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
        self._pending: list[Call] = []
        self._sending: set[asyncio.Task[None]] = set()
        # Round trips (pipelines) sent so far, and calls in them (for tests and metrics).
        self.batches = 0
        self.calls = 0

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._pending:
            # After the callbacks already queued for this turn: every admission reached in
            # this turn joins the batch.
            loop.call_soon(self._flush)
        self._pending.append((keys, args, future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        by_node: dict[str, list[Call]] = {}
        for call in batch:
            by_node.setdefault(node_of(self._redis, call[0][0]), []).append(call)
        loop = asyncio.get_running_loop()
        for node, calls in by_node.items():
            task = loop.create_task(self._send(calls, node))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[Call], node: str) -> None:
        self.batches += 1
        self.calls += len(batch)
        try:
            replies = await self._pipeline(batch)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if missing:
                await load_script(self._redis, self._script, node)
                retried = await self._pipeline([batch[i] for i in missing])
                for index, reply in zip(missing, retried, strict=True):
                    replies[index] = reply
        except asyncio.CancelledError:
            for _, _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - handed to every caller, who decides
            self._rediscovery.after_failure()
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        lost = next((r for r in replies if isinstance(r, LostConnection | LostReply)), None)
        if lost is not None:
            # A cluster pipeline hands each call the error of the connection they shared: one
            # failed round trip, which the breaker counts once (it compares error identity).
            self._rediscovery.after_failure()
            replies = [lost if isinstance(r, LostConnection | LostReply) else r for r in replies]
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the caller gave up (cancelled, timed out)
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipeline(self, batch: list[Call]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                # As a raw command: the cluster pipeline refuses its evalsha() method, though it
                # routes EVALSHA by its keys like any other keyed command.
                pipe.execute_command("EVALSHA", self._sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))
