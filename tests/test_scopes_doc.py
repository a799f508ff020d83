"""docs/scopes.md is generated from the code; this fails as soon as a route or role drifts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from api.cli_audit import scopes_markdown

DOC = Path(__file__).parents[1] / "docs" / "scopes.md"
REGENERATE = "docs/scopes.md drifted from the code: run `tenantgate scopes doc > docs/scopes.md`"


def test_docs_scopes_md_matches_the_routes_and_roles() -> None:
    assert DOC.read_text(encoding="utf-8") == scopes_markdown(), REGENERATE


def test_the_command_regenerates_it(tmp_path: Path) -> None:
    tenantgate = Path(sys.executable).with_name("tenantgate")
    result = subprocess.run(
        [str(tenantgate), "scopes", "doc"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,  # no .env of the checkout; the document does not depend on settings
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == scopes_markdown()
