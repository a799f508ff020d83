"""Claims of README.md and docs/ that are numbers or recipes, checked against the real thing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.support import TEST_ISSUER, World, make_settings
from tests.support_clients import admin_token, client_token, create_client

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


async def _token_sizes(template: Path, directory: Path, algorithm: str) -> list[int]:
    """Sizes of a platform token, a client token, a viewer's and an owner's, on a fresh
    database (whose first signing key is of `algorithm`)."""
    path = directory / f"{algorithm}.db"
    shutil.copy(template, path)
    settings = make_settings(f"sqlite+aiosqlite:///{path}", signing_algorithm=algorithm)
    async with World.start(settings) as world:
        await world.user("root@platform.test", platform_admin=True)
        sizes = [len(await world.login("root@platform.test"))]
        admin = await admin_token(world, "acme")
        client = await create_client(world, admin, "acme", ["items:read"])
        sizes.append(len(await client_token(world.client, client)))
        for role in ("viewer", "owner"):
            await world.member("acme", f"{role}@acme.test", role)
            sizes.append(len(await world.login(f"{role}@acme.test")))
    return sizes


async def test_token_sizes_are_what_the_readme_says(sqlite_template: Path, tmp_path: Path) -> None:
    claim = re.search(
        r"token: (\d+) bytes more\s.*?RS256 (\d+)-(\d+) bytes against ES256 or EdDSA (\d+)-(\d+)"
        r"\s+\(measured with a (\d+)-character issuer",
        README,
        re.DOTALL,
    )
    assert claim, "the README's token size sentence changed: update this test with it"
    more, rs_low, rs_high, ec_low, ec_high, issuer = map(int, claim.groups())
    assert issuer == len(TEST_ISSUER)
    rs256 = await _token_sizes(sqlite_template, tmp_path, "RS256")
    for algorithm in ("ES256", "EdDSA"):
        sizes = await _token_sizes(sqlite_template, tmp_path, algorithm)
        assert [a - b for a, b in zip(rs256, sizes, strict=True)] == [more] * len(sizes)
        assert (ec_low, ec_high) == (min(sizes) - min(sizes) % 5, -(-max(sizes) // 5) * 5), sizes
    assert (rs_low, rs_high) == (min(rs256) - min(rs256) % 10, -(-max(rs256) // 10) * 10), rs256
