"""Static pages served by the app: the API docs (Swagger UI from the fastapi-swagger package) and
the security console. Plain files, no build step, no CDN; they call only the public API."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from storage.audit import Action, EventOutcome

HERE = Path(__file__).parent
DOCS_PATH = "/docs"
CONSOLE_PATH = "/console"
# Small files that change with each release: revalidate every time (the ETag makes it cheap),
# so a new page never runs with an old script.
REVALIDATE = {"Cache-Control": "no-cache"}


def _page(path: Path) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(_request: Request) -> Response:
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=REVALIDATE)

    return endpoint


class _Assets(StaticFiles):
    def file_response(
        self,
        full_path: str | os.PathLike[str],
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(REVALIDATE)
        return response


def _vocabulary_module() -> bytes:
    """The audit vocabulary as an ES module, made from storage/audit.py: it cannot drift."""
    actions = json.dumps([action.value for action in Action])
    outcomes = json.dumps([outcome.value for outcome in EventOutcome])
    return (
        "// Made by the server from its audit vocabulary (api/web/__init__.py).\n"
        f"export const ACTIONS = {actions};\nexport const OUTCOMES = {outcomes};\n"
    ).encode()


def _vocabulary() -> Callable[[Request], Awaitable[Response]]:
    body = _vocabulary_module()

    async def endpoint(_request: Request) -> Response:
        return Response(body, media_type="text/javascript; charset=utf-8", headers=REVALIDATE)

    return endpoint


def install_web(app: FastAPI) -> None:
    """/docs and /console with their assets; public routes, none of them an API route."""
    docs_assets = _Assets(packages=[("api.web", "docs"), ("fastapi_swagger", "resources")])
    app.router.routes += [
        Route(DOCS_PATH, _page(HERE / "docs" / "index.html"), methods=["GET"]),
        Mount(f"{DOCS_PATH}/assets", docs_assets),
        Route(CONSOLE_PATH, _page(HERE / "console" / "index.html"), methods=["GET"]),
        Route(f"{CONSOLE_PATH}/assets/vocabulary.js", _vocabulary(), methods=["GET"]),
        Mount(f"{CONSOLE_PATH}/assets", _Assets(directory=HERE / "console")),
    ]
