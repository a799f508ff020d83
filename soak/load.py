"""The soak's load, a process of its own: virtual users (each tenant's owner and members) run a
weighted mix until the deadline and write what they saw to a JSON file.

    python -m soak.load PLAN.json SECONDS RESULT.json
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

USERS_TIMEOUT = 30.0
RANDOM = random.Random(20261202)  # the shape of the load, not a secret


@dataclass
class Ledger:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    created: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    deleted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    live: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    revoked: list[str] = field(default_factory=list)
    # Revoked tokens some worker still accepted right after the 200 (status it answered).
    revoked_accepted: list[int] = field(default_factory=list)

    def note(self, route: str, response: httpx.Response, seconds: float) -> None:
        self.latencies[route].append(seconds)
        self.statuses[route][response.status_code] += 1
        if response.status_code >= 500 and len(self.server_errors) < 50:
            self.server_errors.append(
                {"route": route, "status": response.status_code, "body": response.text[:300]}
            )


class User:
    def __init__(
        self, http: httpx.AsyncClient, ledger: Ledger, plan: dict[str, Any], tenant: dict[str, Any]
    ) -> None:
        self.http = http
        self.ledger = ledger
        self.password: str = plan["password"]
        self.tenant = tenant
        self.slug: str = tenant["slug"]
        self.email = ""
        self.access = ""
        self.refresh_token: str | None = None
        self.signed_at = 0.0

    async def call(self, route: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        started = time.monotonic()
        response = await self.http.request(method, url, **kwargs)
        self.ledger.note(route, response, time.monotonic() - started)
        return response

    async def sign_in(self) -> bool:
        form = {"grant_type": "password", "username": self.email, "password": self.password}
        response = await self.call("POST /token password", "POST", "/token", data=form)
        if response.status_code != 200:
            return False
        body = response.json()
        self.access, self.refresh_token = body["access_token"], body.get("refresh_token")
        self.signed_at = time.monotonic()
        return True

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    async def api(self, route: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A tenant API call; a token cut off (expired, role lowered) is replaced once."""
        if time.monotonic() - self.signed_at > 25:
            await self.refresh()
        url = f"/v1/tenants/{self.slug}{path}"
        extra = kwargs.pop("headers", {})
        response = await self.call(
            route, method, url, headers={**self.headers(), **extra}, **kwargs
        )
        if response.status_code == 401 and await self.sign_in():
            response = await self.call(
                route, method, url, headers={**self.headers(), **extra}, **kwargs
            )
        return response

    async def refresh(self) -> None:
        if self.refresh_token is None:
            await self.sign_in()
            return
        form = {"grant_type": "refresh_token", "refresh_token": self.refresh_token}
        response = await self.call("POST /token refresh", "POST", "/token", data=form)
        if response.status_code == 200:
            body = response.json()
            self.access, self.refresh_token = body["access_token"], body.get("refresh_token")
            self.signed_at = time.monotonic()
        else:
            await self.sign_in()

    # The mix -----------------------------------------------------------------------------

    async def create_item(self) -> None:
        sku = f"S-{RANDOM.getrandbits(48):012x}"
        body = {"sku": sku, "name": "Soak", "category": "soak", "price": "2.50", "quantity": 1}
        response = await self.api("POST item", "POST", "/items", json=body)
        if response.status_code == 201:
            item_id = response.json()["id"]
            self.ledger.created[self.slug].add(item_id)
            self.ledger.live[self.slug].append(item_id)

    def _pick(self) -> str | None:
        live = self.ledger.live[self.slug]
        return RANDOM.choice(live) if live else None

    async def read_item(self) -> None:
        item_id = self._pick()
        if item_id is None:
            await self.create_item()
            return
        await self.api("GET item", "GET", f"/items/{item_id}")

    async def update_item(self) -> None:
        item_id = self._pick()
        if item_id is None:
            return
        read = await self.api("GET item", "GET", f"/items/{item_id}")
        if read.status_code == 200:
            headers = {"If-Match": read.headers["etag"]}
            await self.api(
                "PATCH item", "PATCH", f"/items/{item_id}", json={"quantity": 2}, headers=headers
            )

    async def delete_item(self) -> None:
        live = self.ledger.live[self.slug]
        if not live:
            return
        item_id = live.pop(RANDOM.randrange(len(live)))
        response = await self.api("DELETE item", "DELETE", f"/items/{item_id}")
        if response.status_code == 204:
            self.ledger.deleted[self.slug].add(item_id)
        elif response.status_code != 404:
            live.append(item_id)  # not deleted (the tenant was suspended, say): still there

    async def list_items(self) -> None:
        await self.api("GET items", "GET", "/items?limit=50")

    async def report(self) -> None:
        await self.api("GET report", "GET", "/reports/inventory")

    async def failed_sign_in(self) -> None:
        form = {"grant_type": "password", "username": self.email, "password": "not it"}
        await self.call("POST /token wrong password", "POST", "/token", data=form)

    async def client_credentials(self) -> None:
        auth = (self.tenant["client_id"], self.tenant["client_secret"])
        response = await self.call(
            "POST /token client_credentials",
            "POST",
            "/token",
            data={"grant_type": "client_credentials"},
            auth=auth,
        )
        if response.status_code == 200:
            token = response.json()["access_token"]
            await self.call(
                "GET items (client)",
                "GET",
                f"/v1/tenants/{self.slug}/items?limit=5",
                headers={"Authorization": f"Bearer {token}"},
            )

    async def revoke(self) -> None:
        form = {"grant_type": "password", "username": self.email, "password": self.password}
        response = await self.call("POST /token password", "POST", "/token", data=form)
        if response.status_code != 200:
            return
        token = response.json()["access_token"]
        revoked = await self.call(
            "POST /revoke", "POST", "/revoke", data={"token": token, "client_id": "tenantgate"}
        )
        if revoked.status_code == 200:
            self.ledger.revoked.append(token)
            # At once, on whichever worker takes the request: the token is still far from expiry.
            after = await self.call(
                "GET /v1/me revoked", "GET", "/v1/me", headers={"Authorization": f"Bearer {token}"}
            )
            if after.status_code != 401:
                self.ledger.revoked_accepted.append(after.status_code)


class Owner(User):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.email = self.tenant["owner"]

    async def change_role(self) -> None:
        member = RANDOM.choice(self.tenant["members"])
        role = RANDOM.choice(["member", "viewer"])
        await self.api(
            "PATCH member", "PATCH", f"/members/{member['user_id']}", json={"role": role}
        )

    async def rotate_secret(self) -> None:
        response = await self.api(
            "POST client secret", "POST", f"/clients/{self.tenant['client_id']}/secret"
        )
        if response.status_code == 200:
            self.tenant["client_secret"] = response.json()["client_secret"]


class Member(User):
    def __init__(self, *args: Any, email: str) -> None:
        super().__init__(*args)
        self.email = email


MIX: dict[str, int] = {
    "read_item": 25,
    "list_items": 10,
    "create_item": 14,
    "update_item": 6,
    "delete_item": 5,
    "report": 3,
    "failed_sign_in": 3,
    "refresh": 4,
    "client_credentials": 4,
    "revoke": 2,
}
OWNER_MIX = {**MIX, "change_role": 2, "rotate_secret": 1}


async def run_user(user: User, deadline: float) -> None:
    await user.sign_in()
    mix = OWNER_MIX if isinstance(user, Owner) else MIX
    names, weights = list(mix), list(mix.values())
    while time.monotonic() < deadline:
        action = RANDOM.choices(names, weights)[0]
        try:
            await getattr(user, action)()
        except httpx.HTTPError as error:
            user.ledger.server_errors.append({"route": action, "error": type(error).__name__})


async def main(plan: dict[str, Any], seconds: float) -> dict[str, Any]:
    ledger = Ledger()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(
        base_url=plan["url"], timeout=USERS_TIMEOUT, limits=limits
    ) as http:
        users: list[User] = []
        for tenant in plan["tenants"]:
            users.append(Owner(http, ledger, plan, tenant))
            users += [
                Member(http, ledger, plan, tenant, email=m["email"]) for m in tenant["members"]
            ]
        await asyncio.gather(*(run_user(user, deadline) for user in users))
    return {
        "routes": {
            route: {
                "count": len(values),
                "p50_ms": _percentile(values, 50),
                "p99_ms": _percentile(values, 99),
                "statuses": {str(k): v for k, v in sorted(ledger.statuses[route].items())},
            }
            for route, values in sorted(ledger.latencies.items())
        },
        "server_errors": ledger.server_errors,
        "items": {
            slug: {
                "created": sorted(ledger.created[slug]),
                "deleted": sorted(ledger.deleted[slug]),
            }
            for slug in ledger.created
        },
        "revoked": ledger.revoked,
        "revoked_accepted": ledger.revoked_accepted,
    }


def _percentile(values: list[float], q: int) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return round(ordered[index] * 1000, 1)


if __name__ == "__main__":
    plan_path, seconds, result_path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    result = asyncio.run(main(json.loads(Path(plan_path).read_text()), seconds))
    Path(result_path).write_text(json.dumps(result))
