"""Calls of one Lua script on the pipelined wire: the calls of one event-loop turn share a write.

Under load many requests reach admission in the same turn of the loop; their EVALSHA commands
go out in one write and their replies come back together (storage/redis_wire.py). Each call is
still its own script execution in Redis, so every count stays exact across processes (no local
counters, nothing deferred).

A Redis that forgot the script (restart, SCRIPT FLUSH) answers NOSCRIPT: that call is sent
again as EVAL, which runs the script and caches it for the calls after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from storage.redis_wire import RedisWire


class ScriptBatcher:
    def __init__(self, wire: RedisWire, script: str) -> None:
        self._wire = wire
        self._script = script
        self._sha = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[str], args: Sequence[str | int]) -> Any:
        try:
            return await self._wire.call("EVALSHA", self._sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self._wire.call("EVAL", self._script, len(keys), *keys, *args)
