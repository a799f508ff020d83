"""The `tenantgate` command, run as a real process against its own SQLite database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TENANTGATE = str(Path(sys.executable).with_name("tenantgate"))


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TENANTGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "TENANTGATE_ARGON2_TIME_COST": "1",
        "TENANTGATE_ARGON2_MEMORY_COST": "1024",
    }


def run(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TENANTGATE, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bootstrap_tenants_users_members_and_keys(env: dict[str, str]) -> None:
    assert run(env, "db", "upgrade").returncode == 0
    first = run(env, "bootstrap", "--json")
    assert first.returncode == 0, first.stderr
    admin = json.loads(first.stdout)
    assert admin["email"] == "admin@tenantgate.local"
    assert len(admin["password"]) >= 20
    second = run(env, "bootstrap", "--json")
    assert json.loads(second.stdout) == {"email": None}

    tenant = run(env, "tenants", "create", "acme", "--name", "Acme Inc", "--plan", "pro", "--json")
    assert json.loads(tenant.stdout) == {"slug": "acme", "name": "Acme Inc", "plan": "pro"}
    user = run(
        env,
        "users",
        "create",
        "Bob@Acme.test",
        "--password-stdin",
        "--json",
        stdin="correct horse battery staple\n",
    )
    assert user.returncode == 0, user.stderr
    created = json.loads(user.stdout)
    assert created["email"] == "bob@acme.test"
    assert "password" not in created
    member = run(env, "members", "add", "acme", "bob@acme.test", "--role", "admin", "--json")
    assert json.loads(member.stdout) == {
        "tenant": "acme",
        "user_id": created["id"],
        "role": "admin",
    }
    key = run(env, "keys", "rotate", "--json")
    assert json.loads(key.stdout)["kid"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tenants", "create", "Not A Slug"), "SLUG must be"),
        (("tenants", "create", "acme", "--plan", "platinum"), "--plan must be one of"),
        (("members", "add", "acme", "bob@acme.test", "--role", "god"), "--role must be one of"),
        (("users", "create", "not-an-email"), "not an email address"),
        (("serve", "--port", "70000"), "65535"),
        (("frobnicate",), "No such command"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = run(env, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_conflicts_and_missing_rows_exit_1_without_a_traceback(env: dict[str, str]) -> None:
    run(env, "db", "upgrade")
    run(env, "tenants", "create", "acme")
    duplicate = run(env, "tenants", "create", "acme")
    assert duplicate.returncode == 1
    assert "exists" in duplicate.stderr
    missing = run(env, "members", "add", "acme", "ghost@acme.test", "--role", "viewer")
    assert missing.returncode == 1
    assert "user not found" in missing.stderr
    assert "Traceback" not in missing.stderr + duplicate.stderr


def test_users_create_without_stdin_prints_a_one_time_password(env: dict[str, str]) -> None:
    run(env, "db", "upgrade")
    result = run(env, "users", "create", "eve@x.test", "--json")
    assert len(json.loads(result.stdout)["password"]) >= 20


def test_an_unmigrated_database_is_a_clean_exit_2(env: dict[str, str]) -> None:
    result = run(env, "tenants", "create", "acme")
    assert result.returncode == 2
    assert "tenantgate db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def _events(env: dict[str, str], chain: str) -> list[dict[str, object]]:
    exported = run(env, "audit", "export", chain)
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines()]


def test_bootstrap_keys_and_plans_are_audited(env: dict[str, str]) -> None:
    env = {
        **env,
        "TENANTGATE_PLAN_LIMITS": '{"gold": {"principal": "9/minute", "tenant": "99/minute"}}',
    }
    assert run(env, "db", "upgrade").returncode == 0
    admin = json.loads(run(env, "bootstrap", "--json").stdout)
    kid = json.loads(run(env, "keys", "rotate", "--json").stdout)["kid"]
    # A plan of TENANTGATE_PLAN_LIMITS is a plan like the built-in ones.
    tenant = run(env, "tenants", "create", "gilt", "--plan", "gold", "--json")
    assert tenant.returncode == 0, tenant.stderr
    assert json.loads(tenant.stdout)["plan"] == "gold"
    platform = _events(env, "_platform")
    assert [(e["action"], e["actor_kind"], e["actor_subject"]) for e in platform] == [
        ("platform_admin.created", "system", "cli"),
        ("signing_key.rotated", "system", "cli"),
    ]
    assert platform[0]["details"] == {"email": admin["email"]}
    assert platform[1]["target"] == f"signing_key:{kid}"
    assert platform[1]["details"] == {"algorithm": "RS256", "forced": "false"}
    created = _events(env, "gilt")
    assert [(e["action"], e["details"]) for e in created] == [("tenant.created", {"plan": "gold"})]
    for chain in ("_platform", "gilt"):
        assert run(env, "audit", "verify", chain).returncode == 0
