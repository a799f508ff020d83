"""/docs and /console over HTTP: strict CSP, nothing from elsewhere, assets from their package.

What the pages do in a browser is tested in tests/browser/.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import pytest

from storage.audit import Action, EventOutcome
from tests.support import World
from tests.support_items import assert_problem

WEB = Path(__file__).parents[1] / "api" / "web"
# vocabulary.js is made by the server (api/web/__init__.py); the others are files.
CONSOLE_SCRIPTS = sorted([*(path.name for path in (WEB / "console").glob("*.js")), "vocabulary.js"])
PAGES_AND_ASSETS = [
    "/docs",
    "/docs/assets/init.js",
    "/docs/assets/swagger-ui-bundle.js",
    "/docs/assets/swagger-ui.css",
    "/console",
    "/console/assets/console.css",
    *(f"/console/assets/{name}" for name in CONSOLE_SCRIPTS),
]


def csp(header: str) -> dict[str, list[str]]:
    directives = (part.strip().split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


async def test_pages_and_assets_get_a_self_only_csp(world: World) -> None:
    for path in PAGES_AND_ASSETS:
        response = await world.client.get(path)
        assert response.status_code == 200, path
        assert response.headers["cache-control"] == "no-cache", path
        assert response.headers["x-frame-options"] == "DENY"
        policy = csp(response.headers["content-security-policy"])
        assert policy["default-src"] == ["'none'"], path
        for directive in ("script-src", "style-src", "connect-src", "font-src"):
            assert policy[directive] == ["'self'"], (path, directive)
        assert policy["img-src"] == ["'self'", "data:"], path  # Swagger UI's icons
        assert policy["form-action"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"]
        if path.startswith("/console"):
            assert policy["require-trusted-types-for"] == ["'script'"]
    # The API itself keeps its own, stricter policy.
    api = csp((await world.client.get("/openapi.json")).headers["content-security-policy"])
    assert api["default-src"] == ["'none'"]
    assert "script-src" not in api


async def test_pages_load_nothing_from_outside_the_app(world: World) -> None:
    for page in ("/docs", "/console"):
        html = (await world.client.get(page)).text
        references = re.findall(r'(?:src|href)="([^"]*)"', html)
        assert references, page
        assert [url for url in references if not url.startswith(("/", "#"))] == [], page
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == [], page  # no inline script
        assert re.findall(r"\son[a-z]+=", html) == [], page  # no inline event handler
    for path in [*(WEB / "console").iterdir(), *(WEB / "docs").iterdir()]:
        if path.suffix in {".js", ".css", ".html"}:
            text = path.read_text(encoding="utf-8")
            assert re.findall(r"https?://", text) == [], path.name
            assert "innerHTML" not in text, path.name
            assert "insertAdjacentHTML" not in text, path.name


async def test_swagger_ui_is_served_from_its_package(world: World) -> None:
    package = files("fastapi_swagger") / "resources"
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        served = await world.client.get(f"/docs/assets/{name}")
        assert served.content == (package / name).read_bytes(), name
        assert not (WEB / "docs" / name).exists(), f"{name} is copied into the repository"
    init = (await world.client.get("/docs/assets/init.js")).text
    assert 'url: "/openapi.json"' in init
    assert 'clientId: "tenantgate"' in init  # the password flow's first-party client


async def test_every_module_the_console_imports_is_served(world: World) -> None:
    imported = {"app.js"}
    for path in (WEB / "console").glob("*.js"):
        source = path.read_text(encoding="utf-8")
        imported |= set(re.findall(r'from "\./([\w-]+\.js)"', source))
    assert imported == set(CONSOLE_SCRIPTS)
    for name in imported:
        response = await world.client.get(f"/console/assets/{name}")
        assert response.headers["content-type"].startswith("text/javascript"), name
    page = (await world.client.get("/console")).text
    assert '<script type="module" src="/console/assets/app.js"></script>' in page


async def test_the_consoles_audit_vocabulary_is_the_servers(world: World) -> None:
    module = await world.client.get("/console/assets/vocabulary.js")
    assert module.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "script-src 'self'" in module.headers["content-security-policy"]
    actions, outcomes = (
        re.findall(r'"([\w.]+)"', part) for part in module.text.split("export const")[1:3]
    )
    assert actions == [action.value for action in Action]
    assert outcomes == [outcome.value for outcome in EventOutcome]
    assert "password.changed" in actions


@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/missing.js",
        "/console/assets/../__init__.py",
        "/console/assets/%2e%2e/__init__.py",
        "/docs/assets/../../app.py",
        "/docs/oauth2-redirect",  # the password flow needs no redirect page
    ],
)
async def test_unknown_assets_are_404_problems(world: World, path: str) -> None:
    assert_problem(await world.client.get(path), 404, "not-found")


async def test_pages_answer_head_and_refuse_writes(world: World) -> None:
    head = await world.client.head("/console")
    assert head.status_code == 200
    assert head.headers["content-type"] == "text/html; charset=utf-8"
    assert (await world.client.post("/console")).status_code == 405
    assert (await world.client.post("/docs/assets/init.js")).status_code == 405
