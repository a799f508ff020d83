"""Tenants, members and clients for the soak, made through the public API as an operator would."""

from __future__ import annotations

from typing import Any

import httpx

PASSWORD = "a soak passphrase, long enough"  # noqa: S105 - a throwaway account's
TENANTS = ("soak-a", "soak-b", "soak-c")
MEMBERS = 3


def token(http: httpx.Client, email: str, password: str) -> str:
    response = http.post(
        "/token", data={"grant_type": "password", "username": email, "password": password}
    )
    response.raise_for_status()
    access: str = response.json()["access_token"]
    return access


def _settle(http: httpx.Client, email: str, one_time: str) -> None:
    """An invited user replaces the one-time password."""
    response = http.post(
        "/v1/me/password",
        json={"current_password": one_time, "new_password": PASSWORD},
        headers={"Authorization": f"Bearer {token(http, email, one_time)}"},
    )
    response.raise_for_status()


def seed(url: str, admin_email: str, admin_password: str) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=30) as http:
        _settle(http, admin_email, admin_password)
        platform = {"Authorization": f"Bearer {token(http, admin_email, PASSWORD)}"}
        tenants = []
        for slug in TENANTS:
            owner = f"owner@{slug}.test"
            created = http.post(
                "/v1/tenants",
                json={"slug": slug, "name": slug, "plan": "pro", "owner_email": owner},
                headers=platform,
            )
            created.raise_for_status()
            _settle(http, owner, created.json()["owner"]["initial_password"])
            headers = {"Authorization": f"Bearer {token(http, owner, PASSWORD)}"}
            members = []
            for index in range(MEMBERS):
                email = f"member{index}@{slug}.test"
                added = http.post(
                    f"/v1/tenants/{slug}/members",
                    json={"email": email, "role": "member"},
                    headers=headers,
                )
                added.raise_for_status()
                _settle(http, email, added.json()["initial_password"])
                members.append({"email": email, "user_id": added.json()["user_id"]})
            client = http.post(
                f"/v1/tenants/{slug}/clients",
                json={"name": "soak", "scopes": ["items:read", "items:write", "reports:read"]},
                headers=headers,
            )
            client.raise_for_status()
            tenants.append(
                {
                    "slug": slug,
                    "owner": owner,
                    "members": members,
                    "client_id": client.json()["client_id"],
                    "client_secret": client.json()["client_secret"],
                }
            )
        return {"url": url, "password": PASSWORD, "admin": admin_email, "tenants": tenants}
