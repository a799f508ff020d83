"""The README stays true: the two commands, and a row for every setting."""

import json
import os
import subprocess
from enum import Enum
from pathlib import Path

import pytest

from config.settings import Settings
from tests.support_ops import TENANTGATE, ServerProcess, server_env

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    missing = [
        name for name in Settings.model_fields if f"| `TENANTGATE_{name.upper()}` |" not in README
    ]
    assert missing == []


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `TENANTGATE_")]
    names = {row.split("`")[1].removeprefix("TENANTGATE_").lower() for row in rows}
    assert names == set(Settings.model_fields)


# Rows whose default is prose, not a value: what they say is checked by other tests.
PROSE_DEFAULTS = {"redis_fallback_processes"}  # "TENANTGATE_WORKERS": test_workers_exact.py


def _matches(cell: str, value: object) -> bool:
    """The table's default cell says `value`: `x` literally, "unset" (None) or "empty"."""
    if cell.startswith("unset"):
        return value is None
    if cell == "empty":
        return value in ([], (), "")
    literal = cell.removeprefix("`").removesuffix("`")
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, bool):
        return literal == str(value).lower()
    if isinstance(value, int | float):
        return float(literal) == float(value)
    if isinstance(value, list | tuple):
        return literal == ",".join(value)
    if isinstance(value, dict):
        return bool(json.loads(literal) == value)
    return literal == value


def test_each_default_in_the_table_is_the_real_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [*os.environ]:
        if name.startswith("TENANTGATE_") or name == "WEB_CONCURRENCY":
            monkeypatch.delenv(name)
    defaults = Settings(_env_file=None)
    rows = [line for line in README.splitlines() if line.startswith("| `TENANTGATE_")]
    wrong = []
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name = cells[0].strip("`").removeprefix("TENANTGATE_").lower()
        if name not in PROSE_DEFAULTS and not _matches(cells[1], getattr(defaults, name)):
            wrong.append((name, cells[1], getattr(defaults, name)))
    assert wrong == []


def test_the_two_commands_are_there() -> None:
    assert "make run" in README
    assert "make test" in README


def tour_script() -> str:
    """The shell block of "From `make run` to a call, with curl", as a reader would paste it."""
    section = README.split("## From `make run` to a call, with curl", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0]


def test_the_curl_tour_runs_against_a_real_server(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/tour.db"
    env = server_env(database_url, TENANTGATE_ISSUER="http://127.0.0.1:8000")
    subprocess.run([TENANTGATE, "db", "upgrade"], env=env, check=True, capture_output=True)
    bootstrap = subprocess.run(
        [TENANTGATE, "bootstrap", "--json"], env=env, check=True, capture_output=True, text=True
    )
    admin_password = json.loads(bootstrap.stdout)["password"]
    server = ServerProcess(env, cwd=tmp_path)
    try:
        server.wait_ready()
        script = (
            tour_script()
            .replace("localhost:8000", f"localhost:{server.port}")
            .replace("'<printed password>'", f"'{admin_password}'")
        )
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["204", "204"]  # both passwords set
    assert json.loads(lines[2])["tenant"] == "acme"
    assert json.loads(lines[3])["price"] == "19.9900"
    assert json.loads(lines[4])["totals"]["stock_value"] == "59.9700"
