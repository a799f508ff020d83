"""A PostgreSQL server of the test's own (initdb + pg_ctl in a temp dir, its own port).

Fault tests stop, start and freeze it; the shared server on 5432 is never touched. PostgreSQL
refuses to run as root, so the cluster belongs to the `postgres` user when the suite is root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support_ops import free_port

PG_USER = "postgres"


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise AssertionError(f"these tests need PostgreSQL's {name} (apt-get install postgresql)")


class PostgresProcess:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data = directory / "pgdata"
        self.port = free_port()
        self.log = directory / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            list(command),
            check=check,
            capture_output=True,
            timeout=60,
            user=PG_USER if os.geteuid() == 0 else None,
            cwd=self.directory,
        )

    def init(self) -> None:
        if os.geteuid() == 0:
            account = pwd.getpwnam(PG_USER)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self._run(
            _binary("initdb"), "-D", str(self.data), "-U", PG_USER, "-A", "trust", "--no-sync"
        )
        settings = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = "
            f"'{self.directory}'\nfsync = off\nshared_buffers = 16MB\nmax_connections = 40\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def start(self) -> None:
        self._run(
            _binary("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        """A fast shutdown: every connection is closed, new ones are refused."""
        self._run(_binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def _pids(self) -> list[int]:
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [postmaster, *map(int, children)]

    def freeze(self) -> None:
        """SIGSTOP the postmaster and every backend: sockets stay open and nothing answers."""
        for pid in self._pids():
            os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in self._pids():
            os.kill(pid, signal.SIGCONT)

    def sql(self, statement: str) -> str:
        """Run one statement through psql on the server's own socket."""
        result = self._run(
            _binary("psql"),
            "-h",
            str(self.directory),
            "-p",
            str(self.port),
            "-U",
            PG_USER,
            "-d",
            "postgres",
            "-Atc",
            statement,
        )
        return result.stdout.decode().strip()

    def running(self) -> bool:
        status = self._run(_binary("pg_ctl"), "-D", str(self.data), "status", check=False)
        return status.returncode == 0


@contextmanager
def own_postgres() -> Iterator[PostgresProcess]:
    """A fresh cluster in a directory of its own under /tmp (pytest's tmp dirs are root-only)."""
    directory = Path(tempfile.mkdtemp(prefix="tenantgate-pg-"))
    server = PostgresProcess(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        _shut_down(server)
        shutil.rmtree(directory, ignore_errors=True)


def _shut_down(server: PostgresProcess) -> None:
    if (server.data / "postmaster.pid").exists():
        with contextlib.suppress(OSError, ValueError):
            server.thaw()
        server._run(
            _binary("pg_ctl"), "-D", str(server.data), "-m", "immediate", "stop", check=False
        )
