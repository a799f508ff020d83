"""Helpers for the operations tests: free ports, log capture, a cuttable TCP proxy, servers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from api.observability import JsonFormatter

ROOT = Path(__file__).resolve().parent.parent
TENANTGATE = str(Path(sys.executable).parent / "tenantgate")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LogCapture(logging.Handler):
    """Every record of every logger, kept raw and formatted as the server would write it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self.formatter_ = JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.formatter_.format(record))

    def entries(self, logger: str | None = None) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.lines]
        return [entry for entry in parsed if logger is None or entry["logger"] == logger]

    def everything(self) -> str:
        """Formatted lines plus every raw attribute of every record, as one searchable text."""
        raw = [repr(record.__dict__) for record in self.records]
        raw += [record.getMessage() for record in self.records]
        return "\n".join(self.lines + raw)


@contextmanager
def capture_logs(level: int = logging.DEBUG) -> Iterator[LogCapture]:
    root = logging.getLogger()
    handler = LogCapture()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


class TcpProxy:
    """Forwards a local port to a target; `cut()` closes the port and every connection."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()


@asynccontextmanager
async def serve_in_process(app: FastAPI, *, http: str = "auto") -> AsyncIterator[str]:
    """The app behind a real uvicorn socket in this event loop; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, http=http, log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def raw_request(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes over a fresh TCP connection; return everything the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks: list[bytes] = []
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TENANTGATE_", "PROMETHEUS_"))
    }
    env.update(
        {
            "TENANTGATE_DATABASE_URL": database_url,
            "TENANTGATE_ISSUER": "https://tenantgate.test",
            "TENANTGATE_AUDIENCE": "tenantgate-test",
            "TENANTGATE_ARGON2_TIME_COST": "1",
            "TENANTGATE_ARGON2_MEMORY_COST": "1024",
            # The PostgreSQL of the test machine is shared (100 connections): a burst must wait
            # for a pooled connection, not open 40 per worker; and a saturated machine may take
            # long to hand one over.
            "TENANTGATE_DATABASE_POOL_SIZE": "8",
            "TENANTGATE_DATABASE_CONNECT_TIMEOUT": "20",
            "TENANTGATE_DATABASE_TIMEOUT": "20",
            **extra,
        }
    )
    return env


class ServerProcess:
    """`tenantgate serve` in a subprocess; stderr (the JSON logs) is kept for inspection."""

    def __init__(self, env: dict[str, str], *args: str, cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = cwd / "server.log"
        self._stderr = self.stderr_path.open("wb")
        command = [TENANTGATE, "serve", "--port", str(self.port), *args]
        # A session of its own: stop() can then end uvicorn's worker processes with it.
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.stderr()}")
            try:
                if httpx.get(self.url + "/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.stderr()}")

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._stderr.close()

    def stop(self) -> None:
        """Kill the server and every worker it spawned (killing the supervisor alone would
        leave its workers running, orphaned, for the rest of the machine's life)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(10)
        self._stderr.close()

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")

    def worker_pids(self, count: int, timeout: float = 30.0) -> list[int]:
        """The uvicorn worker processes (spawned children), once `count` of them run."""
        deadline = time.monotonic() + timeout
        while True:
            pids = sorted(
                pid for pid, cmdline in _children(self.process.pid) if b"spawn_main" in cmdline
            )
            if len(pids) == count:
                return pids
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"{len(pids)} workers, not {count}:\n{self.stderr()}")
            time.sleep(0.05)

    @contextmanager
    def only(self, worker: int, others: list[int], *, probe: str = "/ready") -> Iterator[None]:
        """Every new connection goes to `worker`: the other workers are stopped (SIGSTOP).

        They share one listening socket, so a stopped worker accepts nothing. uvicorn kills a
        worker that misses its health check for 30 s (api/serving.py): keep what runs inside
        short. Waits until `worker` answers `probe` (`/health` while the database is meant to
        be down), so it is also known to have started.
        """
        stopped = [pid for pid in others if pid != worker]
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            self._wait_answering(probe)
            yield
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)

    def _wait_answering(self, probe: str, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + probe, timeout=0.5).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the worker did not answer {probe}:\n{self.stderr()}")
            time.sleep(0.05)


def _children(parent: int) -> Iterator[tuple[int, bytes]]:
    """(pid, command line) of the processes whose parent is `parent` (Linux /proc)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its end.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent:
            yield int(entry.name), cmdline
