"""`make soak`: two workers on PostgreSQL + Redis under a mixed load, then checks.

The load (soak/load.py) runs in a process of its own for SOAK_SECONDS (default 600): item reads,
writes and lists, reports, sign-ins (some failing), refreshes, client credentials, revocations;
owners change member roles and rotate client secrets. Meanwhile this process suspends and resumes
a tenant, rotates the signing key and samples each worker's RSS. At the end it checks: no 5xx,
every audit chain verifies, each tenant holds exactly the items acknowledged as created and not
deleted, every revoked token is refused (by the next request and at the end), no worker's RSS
grew 10 % or more after warm-up; and it prints p50/p99 per route. Exit 1 when a check fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import jwt

from soak.seed import TENANTS, seed, token
from soak.service import Service, rss_kib, running

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SUSPENDED = TENANTS[1]
RSS_LIMIT = 0.10


class Events(threading.Thread):
    """Operator actions during the run, and RSS samples of the workers."""

    def __init__(self, service: Service, plan: dict[str, Any], seconds: float) -> None:
        super().__init__(daemon=True)
        self.service, self.plan, self.seconds = service, plan, seconds
        self.warm_rss: dict[int, int] = {}
        self.done: list[str] = []
        self.problems: list[str] = []
        self.started = time.monotonic()

    def at(self, fraction: float) -> None:
        time.sleep(max(0.0, self.started + fraction * self.seconds - time.monotonic()))

    def run(self) -> None:
        # Warm: every route served, caches and pools filled (30 s, or 20-40 % of a short run).
        self.at(min(max(0.2, 30 / self.seconds), 0.4))
        self.warm_rss = {pid: rss_kib(pid) for pid in self.service.worker_pids()}
        self.at(0.35)
        self._suspend_and_resume()
        self.at(0.5)
        self._rotate_key()

    def _suspend_and_resume(self) -> None:
        with httpx.Client(base_url=self.service.url, timeout=30) as http:
            admin = {
                "Authorization": f"Bearer {token(http, self.plan['admin'], self.plan['password'])}"
            }
            for status in ("suspended", "active"):
                response = http.patch(
                    f"/v1/tenants/{SUSPENDED}", json={"status": status}, headers=admin
                )
                if response.status_code != 200:
                    self.problems.append(f"{status}: {response.status_code} {response.text}")
                time.sleep(5)
        self.done.append(f"tenant {SUSPENDED} suspended for 5 s and resumed")

    def _rotate_key(self) -> None:
        # Refused until the key in use is older than the token TTL plus the refresh interval.
        while time.monotonic() < self.started + 0.9 * self.seconds:
            result = self.service.cli("keys", "rotate", "--json")
            if result.returncode == 0:
                self.done.append(f"signing key rotated: {json.loads(result.stdout)['kid']}")
                return
            time.sleep(5)
        self.problems.append("the signing key could not be rotated within the run")


def _items(service: Service, plan: dict[str, Any], slug: str) -> set[str]:
    with httpx.Client(base_url=service.url, timeout=30) as http:
        owner = {"Authorization": f"Bearer {token(http, f'owner@{slug}.test', plan['password'])}"}
        found: set[str] = set()
        cursor = None
        while True:
            query = {"limit": "100", **({"cursor": cursor} if cursor else {})}
            page = http.get(f"/v1/tenants/{slug}/items", params=query, headers=owner).json()
            found |= {item["id"] for item in page["items"]}
            cursor = page.get("next_cursor")
            if not cursor:
                return found


def _revoked_refused(service: Service, tokens: list[str]) -> tuple[int, int]:
    """(refused, of which still unexpired: refused only because of the revocation)."""
    refused = unexpired = 0
    with httpx.Client(base_url=service.url, timeout=30) as http:
        for access in tokens:
            expires = jwt.decode(access, options={"verify_signature": False})["exp"]
            if http.get("/v1/me", headers={"Authorization": f"Bearer {access}"}).status_code == 401:
                refused += 1
                unexpired += expires > time.time()
    return refused, unexpired


def _verify(service: Service, chain: str) -> subprocess.CompletedProcess[str]:
    """`audit verify`, tried again while the database cannot be used (exit 2: on a shared
    PostgreSQL another program may hold every connection for a moment); a broken chain (exit 1)
    is final."""
    for _ in range(10):
        verified = service.cli("audit", "verify", chain)
        if verified.returncode != 2:
            break
        time.sleep(3)
    return verified


def check(service: Service, plan: dict[str, Any], result: dict[str, Any], events: Events) -> bool:
    checks: list[tuple[str, bool, str]] = []
    server_errors = sum(
        count
        for route in result["routes"].values()
        for status, count in route["statuses"].items()
        if int(status) >= 500
    )
    checks.append(
        (
            "no 5xx response",
            server_errors == 0 and not result["server_errors"],
            f"{server_errors} 5xx, {len(result['server_errors'])} transport errors",
        )
    )
    for chain in (*TENANTS, "_platform"):
        verified = _verify(service, chain)
        checks.append(
            (
                f"audit chain {chain} verifies",
                verified.returncode == 0,
                (verified.stdout or verified.stderr).strip(),
            )
        )
    for slug in TENANTS:
        ledger = result["items"].get(slug, {"created": [], "deleted": []})
        expected = set(ledger["created"]) - set(ledger["deleted"])
        found = _items(service, plan, slug)
        checks.append(
            (
                f"{slug}: items = acknowledged creates - deletes",
                found == expected,
                f"{len(found)} stored, {len(ledger['created'])} created, "
                f"{len(ledger['deleted'])} deleted",
            )
        )
    accepted = result["revoked_accepted"]
    checks.append(
        (
            "every revoked token refused at once",
            bool(result["revoked"]) and not accepted,
            f"{len(result['revoked']) - len(accepted)}/{len(result['revoked'])} refused "
            "by the next request" + (f" (accepted: {accepted[:5]})" if accepted else ""),
        )
    )
    refused, unexpired = _revoked_refused(service, result["revoked"])
    checks.append(
        (
            "every revoked token refused at the end",
            refused == len(result["revoked"]),
            f"{refused}/{len(result['revoked'])} refused ({unexpired} not yet expired)",
        )
    )
    final = {pid: rss_kib(pid) for pid in service.worker_pids()}
    for pid, warm in sorted(events.warm_rss.items()):
        now = final.get(pid)
        growth = (now - warm) / warm if now else float("inf")
        checks.append(
            (
                f"worker {pid}: RSS growth after warm-up < 10 %",
                growth < RSS_LIMIT,
                f"{warm // 1024} -> {(now or 0) // 1024} MiB ({growth:+.1%})",
            )
        )
    checks.append(
        ("operator events", not events.problems, "; ".join(events.done + events.problems))
    )
    errors = [line for line in service.log.read_text().splitlines() if '"level":"ERROR"' in line]
    detail = f"{len(errors)} lines" + "".join(f"\n      {line[:300]}" for line in errors[:3])
    checks.append(("no ERROR line in the server log", not errors, detail))
    _print(result, checks)
    return all(ok for _, ok, _ in checks)


def _print(result: dict[str, Any], checks: list[tuple[str, bool, str]]) -> None:
    print(f"\nsoak: {SECONDS:g} s, 2 workers, PostgreSQL + Redis\n")
    print(f"{'route':34} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for name, route in result["routes"].items():
        statuses = " ".join(f"{s}:{n}" for s, n in route["statuses"].items())
        print(
            f"{name:34} {route['count']:>9} {route['p50_ms']:>8} {route['p99_ms']:>8}  {statuses}"
        )
    print()
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    for error in result["server_errors"][:10]:
        print("  5xx:", error)


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="tenantgate-soak-") as temp,
        running(Path(temp)) as service,
    ):
        plan = seed(service.url, service.admin_email, service.admin_password)
        plan_path, result_path = Path(temp) / "plan.json", Path(temp) / "result.json"
        plan_path.write_text(json.dumps(plan))
        events = Events(service, plan, SECONDS)
        events.start()
        subprocess.run(
            [sys.executable, "-m", "soak.load", str(plan_path), str(SECONDS), str(result_path)],
            check=True,
        )
        events.join(timeout=60)
        result = json.loads(result_path.read_text())
        return 0 if check(service, plan, result, events) else 1


if __name__ == "__main__":
    sys.exit(main())
