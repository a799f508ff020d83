"""A PgBouncer of the test's own (Debian's `pgbouncer`), on a free port, in front of the suite's
PostgreSQL; its own configuration in a temp dir, trust authentication for the user postgres.

PgBouncer refuses to run as root, so when the suite is root it runs as `postgres`, in a
directory under /tmp that user may write (pytest's tmp dirs are root-only).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tests.support_ops import free_port
from tests.support_postgres import PG_USER


class PgBouncer:
    def __init__(self, directory: Path, upstream: sa.URL, *, mode: str, pool_size: int) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        assert Path(binary).exists(), "these tests need PgBouncer (apt-get install pgbouncer)"
        self.binary = binary
        self.directory = directory
        self.upstream = upstream
        self.port = free_port()
        self.mode = mode
        self.pool_size = pool_size
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        """The upstream URL (driver, user, database) with PgBouncer's address."""
        address = self.upstream.set(host="127.0.0.1", port=self.port, database=database)
        return address.render_as_string(hide_password=False)

    def start(self) -> None:
        config = self.directory / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host={self.upstream.host or '127.0.0.1'} port={self.upstream.port or 5432}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.directory / 'users.txt'}\n"
            f"pool_mode = {self.mode}\ndefault_pool_size = {self.pool_size}\n"
            "max_client_conn = 500\nserver_reset_query = DISCARD ALL\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\n"
            f"pidfile = {self.directory / 'pgbouncer.pid'}\n"
        )
        (self.directory / "users.txt").write_text(f'"{PG_USER}" ""\n')
        root = os.geteuid() == 0
        if root:
            account = pwd.getpwnam(PG_USER)
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        self.process = subprocess.Popen(
            [self.binary, str(config)],
            user=PG_USER if root else None,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"pgbouncer exited:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"pgbouncer did not listen:\n{self.log()}")

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@contextmanager
def own_pgbouncer(upstream: str, *, mode: str, pool_size: int = 4) -> Iterator[PgBouncer]:
    directory = Path(tempfile.mkdtemp(prefix="tenantgate-pgbouncer-"))
    bouncer = PgBouncer(directory, sa.make_url(upstream), mode=mode, pool_size=pool_size)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(directory, ignore_errors=True)
