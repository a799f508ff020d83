"""TENANTGATE_ENV=production refuses development defaults, one line per problem, each on its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from asgi_lifespan import LifespanManager

from api.app import create_app
from api.metrics import MULTIPROC_ENV
from api.middleware.security_headers import SecurityHeaders
from api.runtime import StartupRefused, _ensure_signing_key
from api.serving import prepare_metrics, refusals
from config.settings import Environment, Settings
from storage.database import Database
from storage.migrate import upgrade
from tests.support import make_settings
from tests.support_ops import TENANTGATE, server_env

GOOD: dict[str, Any] = {
    "env": "production",
    "database_url": "postgresql+asyncpg://tenantgate:secret@db.internal:5432/tenantgate",
    "issuer": "https://auth.example.com",
    "redis_url": "redis://redis.internal:6379/0",
    "allowed_hosts": "api.example.com",
    "cors_origins": "https://app.example.com",
    "log_level": "INFO",
    "system_secret": "a-production-secret-of-32-or-more-characters",
}

# One development default at a time, and the setting its refusal must name.
DEFAULTS = [
    ({"database_url": "sqlite+aiosqlite:///./var/tenantgate.db"}, "TENANTGATE_DATABASE_URL"),
    ({"issuer": "http://127.0.0.1:8000"}, "TENANTGATE_ISSUER is not set"),
    ({"issuer": "http://auth.example.com"}, "TENANTGATE_ISSUER is not an https URL"),
    ({"cors_origins": "*"}, "TENANTGATE_CORS_ORIGINS"),
    ({"redis_url": None}, "TENANTGATE_REDIS_URL"),
    ({"allowed_hosts": "localhost,127.0.0.1"}, "TENANTGATE_ALLOWED_HOSTS"),
    ({"allowed_hosts": "*"}, "TENANTGATE_ALLOWED_HOSTS"),
    ({"log_level": "debug"}, "TENANTGATE_LOG_LEVEL"),
    ({"system_secret": None}, "TENANTGATE_SYSTEM_SECRET"),
    ({"system_secret": "too-short"}, "TENANTGATE_SYSTEM_SECRET"),
]


def production(**changes: Any) -> Settings:
    return Settings(_env_file=None, **{**GOOD, **changes})


def test_a_production_configuration_has_no_problem() -> None:
    assert production().production_problems() == []
    assert refusals(production(), has_signing_key=True) == []


@pytest.mark.parametrize(("change", "named"), DEFAULTS)
def test_each_development_default_is_refused_on_its_own(change: dict[str, Any], named: str) -> None:
    problems = production(**change).production_problems()
    assert len(problems) == 1
    assert named in problems[0]
    assert "\n" not in problems[0]


def test_a_missing_signing_key_is_refused() -> None:
    problems = refusals(production(), has_signing_key=False)
    assert len(problems) == 1
    assert "no signing key" in problems[0]
    assert "tenantgate keys rotate" in problems[0]


def test_development_refuses_nothing() -> None:
    development = Settings(_env_file=None, env=Environment.DEVELOPMENT)
    assert refusals(development, has_signing_key=False) == []


async def test_start_up_refuses_development_defaults(database_url: str) -> None:
    settings = make_settings(database_url, env="production", issuer="http://127.0.0.1:8000")
    with pytest.raises(StartupRefused) as refused:
        async with LifespanManager(create_app(settings)):
            pass
    assert "TENANTGATE_ISSUER is not set" in str(refused.value)


async def test_start_up_never_generates_a_key_in_production(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    await asyncio.to_thread(upgrade, make_settings(url))
    database = Database(make_settings(url))
    try:
        with pytest.raises(StartupRefused, match="no signing key is provisioned"):
            await _ensure_signing_key(make_settings(url, env="production"), database)
    finally:
        await database.dispose()


def test_debug_output_is_off_in_every_environment(settings: Settings) -> None:
    assert create_app(settings).debug is False
    assert create_app(production()).debug is False


def test_production_responses_ask_for_https_only() -> None:
    headers = dict(SecurityHeaders({}, hsts=True).for_path("/v1/me"))
    assert headers[b"strict-transport-security"].startswith(b"max-age=")
    assert b"strict-transport-security" not in dict(
        SecurityHeaders({}, hsts=False).for_path("/v1/me")
    )


def test_serve_prints_one_line_per_refusal_and_exits(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/prod.db"
    upgrade(make_settings(url))
    env = server_env(url, TENANTGATE_ENV="production", TENANTGATE_ISSUER="http://127.0.0.1:8000")
    command = [TENANTGATE, "serve", "--port", "1"]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("refused: ") for line in lines), result.stderr
    assert [line for line in lines if "TENANTGATE_DATABASE_URL" in line]
    assert [line for line in lines if "TENANTGATE_ISSUER is not set" in line]
    assert [line for line in lines if "TENANTGATE_REDIS_URL" in line]
    assert [line for line in lines if "TENANTGATE_ALLOWED_HOSTS" in line]
    assert [line for line in lines if "no signing key" in line]
    assert [line for line in lines if "TENANTGATE_SYSTEM_SECRET" in line]
    assert len(lines) == 6

    rotate = [TENANTGATE, "keys", "rotate", "--if-missing", "--json"]
    first = subprocess.run(rotate, env=env, capture_output=True, text=True, timeout=60, check=True)
    again = subprocess.run(rotate, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert first.stdout.startswith('{"kid": "')
    assert again.stdout.strip() == '{"kid": null}'
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1
    assert "no signing key" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 5


def test_serve_prepares_metrics_files_only_for_several_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # setenv first, so the undo restores the variable as it was (a delenv of an unset variable
    # records nothing, and prepare_metrics' own setting would leak into later tests).
    monkeypatch.setenv(MULTIPROC_ENV, "")
    monkeypatch.delenv(MULTIPROC_ENV)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert prepare_metrics(1) is None
    assert MULTIPROC_ENV not in os.environ
    created = prepare_metrics(2)
    assert created is not None
    assert os.environ[MULTIPROC_ENV] == created
    assert Path(created).is_dir()
    operator = tmp_path / "operator"
    monkeypatch.setenv(MULTIPROC_ENV, str(operator))
    assert prepare_metrics(4) is None  # the operator's directory is kept (emptied of *.db)
    assert operator.is_dir()
