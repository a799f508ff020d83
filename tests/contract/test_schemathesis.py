"""The OpenAPI document is the contract: schemathesis runs all its phases against the live
service, as an owner, an auditor, an OAuth client and without a token; every finding fails.

Seeded and bounded (`MAX_EXAMPLES` per operation) so the four runs fit the suite's budget; the
service is `tenantgate serve` on a fresh SQLite file with every limit out of reach.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.live import LiveService, start

pytestmark = pytest.mark.xdist_group("contract")

ST = str(Path(sys.executable).with_name("st"))
SEED = 20261202
MAX_EXAMPLES = 4
PHASES = "examples,coverage,fuzzing,stateful"
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
        "ignored_auth",
        "use_after_free",
        "ensure_resource_availability",
    )
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    live = start(tmp_path_factory.mktemp("contract"))
    try:
        yield live
    finally:
        live.server.stop()


def schemathesis(
    service: LiveService, token: str | None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    auth = ["--header", f"Authorization: Bearer {token}"] if token else []
    return subprocess.run(
        [
            ST,
            "run",
            f"{service.url}/openapi.json",
            *auth,
            "--phases",
            PHASES,
            "--checks",
            CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--workers",
            "1",  # hypothesis' lambda descriptions crash CPython 3.11's ast in threads
            "--request-timeout",
            "20",
        ],
        cwd=cwd,  # its example database stays out of the repository
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": str(Path(sys.executable).parent), "NO_COLOR": "1", "HOME": str(cwd)},
    )


@pytest.mark.parametrize("who", ["owner", "auditor", "client", "anonymous"])
def test_the_service_keeps_its_openapi_contract(
    service: LiveService, who: str, tmp_path: Path
) -> None:
    token = None if who == "anonymous" else getattr(service.tokens, who)
    result = schemathesis(service, token, tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-12000:]
    assert "API Operations:" in report
    assert " failure" not in report.rsplit("====", 1)[-1], report[-4000:]
