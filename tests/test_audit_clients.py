"""Client created / revoked / secret rotated, client_credentials issued / refused, token revoked."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support import World, bearer, jwt_part
from tests.support_audit import every_stored_value, member_token, move_clock, only, trail


async def admin(world: World) -> tuple[str, str]:
    await world.tenant("acme")
    return await member_token(world, "acme", "adm@acme.test", "admin")


async def new_client(world: World, token: str, scopes: list[str]) -> dict[str, Any]:
    response = await world.client.post(
        "/v1/tenants/acme/clients",
        headers=bearer(token),
        json={"name": "Warehouse sync", "scopes": scopes},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def client_token(world: World, client_id: str, secret: str, **form: str) -> Any:
    data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    return await world.client.post("/token", data={**data, **form})


async def test_client_lifecycle_events(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token, admin_id = await admin(world)
    created = await new_client(world, token, ["items:read"])
    client_id = created["client_id"]
    event = await only(world, "acme", "client.created")
    assert (event.actor_kind, event.actor_subject) == ("user", admin_id)
    assert (event.target, event.scopes) == (f"client:{client_id}", ("items:read",))
    assert event.details == {"name": "Warehouse sync"}
    rotated = await world.client.post(
        f"/v1/tenants/acme/clients/{client_id}/secret", headers=bearer(token)
    )
    assert rotated.status_code == 200
    event = await only(world, "acme", "client.secret_rotated")
    assert (event.actor_subject, event.target) == (admin_id, f"client:{client_id}")
    deleted = await world.client.delete(
        f"/v1/tenants/acme/clients/{client_id}", headers=bearer(token)
    )
    assert deleted.status_code == 204
    event = await only(world, "acme", "client.revoked")
    assert (event.actor_subject, event.target) == (admin_id, f"client:{client_id}")
    stored = await every_stored_value(world)
    logs = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    for secret in (created["client_secret"], rotated.json()["client_secret"]):
        assert secret not in stored
        assert secret not in logs
    # A refused creation (scope beyond the creator's) records the denial, not a creation.
    refused = await world.client.post(
        "/v1/tenants/acme/clients",
        headers=bearer(token),
        json={"name": "Too much", "scopes": ["audit:read"]},
    )
    assert refused.status_code == 403
    assert len(await trail(world, "acme", "client.created")) == 1


async def test_client_credentials_issued(world: World) -> None:
    token, _ = await admin(world)
    created = await new_client(world, token, ["items:read", "reports:read"])
    response = await client_token(
        world, created["client_id"], created["client_secret"], scope="items:read"
    )
    assert response.status_code == 200, response.text
    issued = [e for e in await trail(world, "acme", "token.issued") if e.actor_kind == "client"]
    assert len(issued) == 1
    event = issued[0]
    subject = f"client:{created['client_id']}"
    assert (event.actor_subject, event.target, event.scopes) == (subject, subject, ("items:read",))
    assert event.details == {
        "grant_type": "client_credentials",
        "client_id": created["client_id"],
        "jti": jwt_part(response.json()["access_token"], 1)["jti"],
    }
    assert created["client_secret"] not in await every_stored_value(world)


async def test_client_credentials_refusals_are_one_event_per_client_and_minute(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    token, _ = await admin(world)
    created = await new_client(world, token, ["items:read"])
    client_id = created["client_id"]
    wrong = created["client_secret"][:-4] + "AAAA"
    for _ in range(3):
        assert (await client_token(world, client_id, wrong)).status_code == 401
    assert (
        await client_token(world, client_id, created["client_secret"], scope="audit:read")
    ).status_code == 400
    event = await only(world, "acme", "token.refused")
    assert (event.actor_kind, event.actor_subject) == ("client", f"client:{client_id}")
    assert event.details["reason"] == "invalid_client"
    assert event.details["grant_type"] == "client_credentials"
    assert "window_end" in event.details
    # Half a minute on, the window still holds; a minute on, the next refusal opens a new one.
    move_clock(monkeypatch, 30, "auth.client_grant")
    assert (await client_token(world, client_id, wrong)).status_code == 401
    assert len(await trail(world, "acme", "token.refused")) == 1
    move_clock(monkeypatch, 61, "auth.client_grant")
    assert (await client_token(world, client_id, wrong)).status_code == 401
    assert len(await trail(world, "acme", "token.refused")) == 2
    monkeypatch.undo()
    for _ in range(2):
        response = await client_token(world, "cli_00000000000000000000aa", "tgcs_guess")
        assert response.status_code == 401
    unknown = await only(world, None, "token.refused")
    assert (unknown.actor_kind, unknown.target) == ("anonymous", "client:unknown")
    assert unknown.details["client_id"] == "cli_00000000000000000000aa"
    stored = await every_stored_value(world)
    assert wrong not in stored
    assert "tgcs_guess" not in stored


async def test_revocations_are_recorded(world: World) -> None:
    await world.tenant("acme")
    user_id = await world.member("acme", "ann@acme.test", "admin")
    tokens = (await world.token_response("ann@acme.test")).json()
    access, refresh = tokens["access_token"], tokens["refresh_token"]
    assert (await world.client.post("/revoke", data={"token": access})).status_code == 200
    event = await only(world, "acme", "token.revoked")
    jti = jwt_part(access, 1)["jti"]
    assert (event.actor_kind, event.actor_subject, event.target) == (
        "user",
        user_id,
        f"token:{jti}",
    )
    assert event.details == {
        "token_type": "access_token",
        "jti": jti,
        "client_id": "tenantgate",
        "subject": user_id,
    }
    assert (await world.client.post("/revoke", data={"token": refresh})).status_code == 200
    events = await trail(world, "acme", "token.revoked")
    assert len(events) == 2
    family = (await only(world, "acme", "token.issued")).details["family"]
    assert events[1].target == f"refresh_family:{family}"
    assert events[1].details["token_type"] == "refresh_token"
    # Unknown tokens, or ones already revoked: 200 and nothing recorded.
    for token in ("garbage", refresh):
        assert (await world.client.post("/revoke", data={"token": token})).status_code == 200
    assert len(await trail(world, "acme", "token.revoked")) == 2
    stored = await every_stored_value(world)
    assert access not in stored
    assert refresh not in stored


async def test_a_client_revoking_its_own_token(world: World) -> None:
    token, _ = await admin(world)
    created = await new_client(world, token, ["items:read"])
    access = (await client_token(world, created["client_id"], created["client_secret"])).json()
    form = {
        "token": access["access_token"],
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
    }
    assert (await world.client.post("/revoke", data=form)).status_code == 200
    event = await only(world, "acme", "token.revoked")
    subject = f"client:{created['client_id']}"
    assert (event.actor_kind, event.actor_subject, event.details["subject"]) == (
        "client",
        subject,
        subject,
    )
