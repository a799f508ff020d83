"""Servers under test: each in its own process on a free port, stopped when the run ends."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(command: list[str], env: dict[str, str], log: Path) -> Iterator[int]:
    """Start `command --port N`, wait until it answers HTTP (any status), yield N."""
    port = free_port()
    with log.open("ab") as output:
        process = subprocess.Popen(
            [*command, "--port", str(port)], cwd=ROOT, env=env, stdout=output, stderr=output
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command} exited:\n" + log.read_text()[-4000:])
            try:
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{command} did not start:\n" + log.read_text()[-4000:])
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=60)


def uvicorn(app: str) -> list[str]:
    """A factory app served by uvicorn like the real one (uvloop, httptools)."""
    command = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1"]
    return [*command, "--no-proxy-headers", "--no-server-header", "--no-access-log"]


def tenantgate_serve(workers: int = 1) -> list[str]:
    """The real entry point with its own defaults (`tenantgate serve`)."""
    command = [sys.executable, "-c", "from api.cli import main; main()", "serve"]
    return [*command, "--workers", str(workers)]
