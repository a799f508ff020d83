"""Redis Cluster: the keys one script call touches share a hash tag, hence one slot."""

from __future__ import annotations

import re
from collections import defaultdict

from redis.asyncio import Redis
from redis.crc import key_slot

from storage.guard_failover import FailoverGuardStore
from storage.guard_state import TenantState, Window
from tests.support import World, bearer, make_settings

HASH_TAG = re.compile(r"\{([^}]+)\}")
ADMISSION_KINDS = {"tenant", "jti", "rev", "rl"}


async def test_every_guard_key_is_hash_tagged_and_a_tag_is_one_slot(
    database_url: str, redis_url: str, redis_prefix: str
) -> None:
    settings = make_settings(database_url, redis_url=redis_url, redis_prefix=redis_prefix)
    async with World.start(settings) as world:
        await world.tenant("acme")
        await world.member("acme", "kim@acme.test", "viewer")
        token = await world.login("kim@acme.test")  # the login limiter's keys
        assert (await world.client.get("/v1/me", headers=bearer(token))).status_code == 200
        guard = world.app.state.guard
        assert isinstance(guard, FailoverGuardStore)
        # Every kind of key of the admission script: tenant, jti, subject revision, counters.
        await guard.put_tenant("acme", TenantState(True, Window(5, 60), Window(50, 60)))
        await guard.revoke_token("acme", "some-jti", 60)
        await guard.set_subject_revision("acme", "some-user", 1, 60)
        # A tenant route counts both rate-limit windows.
        items = await world.client.get("/v1/tenants/acme/items", headers=bearer(token))
        assert items.status_code == 200

    client = Redis.from_url(redis_url)
    try:
        keys = [key.decode() async for key in client.scan_iter(match=f"{redis_prefix}:*")]
    finally:
        await client.aclose()
    assert keys
    slots: dict[str, set[int]] = defaultdict(set)
    kinds: dict[str, set[str]] = defaultdict(set)
    for key in keys:
        tags = HASH_TAG.findall(key)
        assert len(tags) == 1, f"{key} has no single hash tag"
        slots[tags[0]].add(key_slot(key.encode()))
        kinds[tags[0]].add(key.split("}:", 1)[1].split(":", 1)[0])
    assert all(len(tag_slots) == 1 for tag_slots in slots.values()), slots
    assert kinds["acme"] >= ADMISSION_KINDS
