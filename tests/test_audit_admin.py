"""Member added, role changed, removed; tenant created, changed, suspended: one event each."""

from __future__ import annotations

from policies.roles import ROLES
from tests.support import World, bearer
from tests.support_audit import every_stored_value, member_token, only, trail

UA = {"User-Agent": "admin-console/2"}


async def platform_admin(world: World) -> tuple[str, str]:
    user_id = await world.user("root@platform.test", platform_admin=True)
    return await world.login("root@platform.test"), user_id


async def test_member_added_role_changed_removed(world: World) -> None:
    await world.tenant("acme")
    token, owner_id = await member_token(world, "acme", "own@acme.test", "owner")
    members = "/v1/tenants/acme/members"
    headers = {**bearer(token), **UA}
    added = await world.client.post(
        members, headers=headers, json={"email": "new@acme.test", "role": "viewer"}
    )
    assert added.status_code == 201, added.text
    user_id = added.json()["user_id"]
    event = await only(world, "acme", "member.added")
    assert (event.actor_kind, event.actor_subject) == ("user", owner_id)
    assert (event.target, event.outcome) == (f"user:{user_id}", "success")
    assert event.scopes == tuple(sorted(ROLES["viewer"]))
    assert event.details == {"role": "viewer", "invited": True}
    assert event.user_agent == "admin-console/2"
    assert added.json()["initial_password"] not in await every_stored_value(world)

    changed = await world.client.patch(
        f"{members}/{user_id}", headers=headers, json={"role": "member"}
    )
    assert changed.status_code == 200, changed.text
    event = await only(world, "acme", "member.role_changed")
    assert event.details == {"from": "viewer", "to": "member", "tokens_cut_off": False}
    assert event.scopes == tuple(sorted(ROLES["member"]))
    # The same role again is no change, and no event.
    same = await world.client.patch(
        f"{members}/{user_id}", headers=headers, json={"role": "member"}
    )
    assert same.status_code == 200
    downgraded = await world.client.patch(
        f"{members}/{user_id}", headers=headers, json={"role": "viewer"}
    )
    assert downgraded.status_code == 200
    role_changes = await trail(world, "acme", "member.role_changed")
    assert [e.details["tokens_cut_off"] for e in role_changes] == [False, True]

    removed = await world.client.delete(f"{members}/{user_id}", headers=headers)
    assert removed.status_code == 204
    event = await only(world, "acme", "member.removed")
    assert (event.actor_subject, event.target, event.details) == (
        owner_id,
        f"user:{user_id}",
        {"role": "viewer"},
    )


async def test_refused_member_changes_record_nothing_but_the_refusal(world: World) -> None:
    await world.tenant("acme")
    token, owner_id = await member_token(world, "acme", "own@acme.test", "owner")
    admin, admin_id = await member_token(world, "acme", "adm@acme.test", "admin")
    members = "/v1/tenants/acme/members"
    before = len(await trail(world, "acme"))
    # The last owner cannot demote themself (409); a missing member is 404: neither is a change.
    response = await world.client.patch(
        f"{members}/{owner_id}", headers=bearer(token), json={"role": "admin"}
    )
    assert response.status_code == 409
    missing = await world.client.delete(
        f"{members}/usr_000000000000nothere00", headers=bearer(token)
    )
    assert missing.status_code == 404
    assert len(await trail(world, "acme")) == before
    # An admin demoting the owner reaches above their own scopes: refused, and the refusal is
    # the one event written.
    escalation = await world.client.patch(
        f"{members}/{owner_id}", headers=bearer(admin), json={"role": "viewer"}
    )
    assert escalation.status_code == 403
    written = (await trail(world, "acme"))[before:]
    assert [(e.action, e.actor_subject, e.outcome) for e in written] == [
        ("access.denied", admin_id, "denied")
    ]
    assert written[0].details["reason"] == "privilege_escalation"


async def test_tenant_created_with_its_owner(world: World) -> None:
    token, admin_id = await platform_admin(world)
    response = await world.client.post(
        "/v1/tenants",
        headers=bearer(token),
        json={"slug": "globex", "name": "Globex", "plan": "pro", "owner_email": "hank@globex.test"},
    )
    assert response.status_code == 201, response.text
    owner_id = response.json()["owner"]["user_id"]
    created = await only(world, "globex", "tenant.created")
    assert (created.tenant, created.actor_kind, created.actor_subject) == (
        "globex",
        "user",
        admin_id,
    )
    assert (created.target, created.details) == ("tenant:globex", {"name": "Globex", "plan": "pro"})
    added = await only(world, "globex", "member.added")
    assert (added.actor_subject, added.target) == (admin_id, f"user:{owner_id}")
    assert added.details == {"role": "owner", "invited": True}
    assert [e.seq for e in await trail(world, "globex")] == [1, 2]


async def test_tenant_changed_suspended_and_reactivated(world: World) -> None:
    token, admin_id = await platform_admin(world)
    await world.tenant("acme")
    path = "/v1/tenants/acme"
    assert (
        await world.client.patch(path, headers=bearer(token), json={"plan": "pro"})
    ).status_code == 200
    changed = await only(world, "acme", "tenant.changed")
    assert changed.details == {"plan": {"from": "free", "to": "pro"}}
    assert changed.actor_subject == admin_id
    suspend = {"status": "suspended", "name": "Acme (frozen)"}
    assert (await world.client.patch(path, headers=bearer(token), json=suspend)).status_code == 200
    suspended = await only(world, "acme", "tenant.suspended")
    assert suspended.details == {
        "status": {"from": "active", "to": "suspended"},
        "name": {"from": "Acme", "to": "Acme (frozen)"},
    }
    # Suspending again changes nothing: no event. Reactivating is a change.
    assert (await world.client.patch(path, headers=bearer(token), json=suspend)).status_code == 200
    reactivate = {"status": "active"}
    assert (
        await world.client.patch(path, headers=bearer(token), json=reactivate)
    ).status_code == 200
    actions = [e.action for e in await trail(world, "acme")]
    assert actions == ["tenant.changed", "tenant.suspended", "tenant.changed"]
    assert (
        await world.client.patch("/v1/tenants/nope", headers=bearer(token), json=reactivate)
    ).status_code == 404
    assert await trail(world, "nope") == []


async def test_platform_events_never_reach_tenant_auditors_of_other_tenants(world: World) -> None:
    token, _ = await platform_admin(world)
    await world.tenant("acme")
    auditor, _ = await member_token(world, "acme", "aud@acme.test", "auditor")
    created = await world.client.post(
        "/v1/tenants", headers=bearer(token), json={"slug": "globex", "name": "Globex"}
    )
    assert created.status_code == 201
    shown = (
        await world.client.get("/v1/tenants/acme/audit/events", headers=bearer(auditor))
    ).json()["events"]
    assert {e["tenant"] for e in shown} == {"acme"}
    assert "tenant.created" not in {e["action"] for e in shown}


async def test_privilege_escalation_is_an_access_denied_event(world: World) -> None:
    await world.tenant("acme")
    token, admin_id = await member_token(world, "acme", "adm@acme.test", "admin")
    response = await world.client.post(
        "/v1/tenants/acme/members",
        headers=bearer(token),
        json={"email": "boss@acme.test", "role": "owner"},
    )
    assert response.status_code == 403
    event = await only(world, "acme", "access.denied")
    assert (event.actor_subject, event.target) == (admin_id, "POST /v1/tenants/{tenant}/members")
    assert event.details["reason"] == "privilege_escalation"
    assert event.details["missing"] == ["audit:read"]
    assert await trail(world, "acme", "member.added") == []
