"""A Redis Cluster of the test's own: redis-server --cluster-enabled yes on free ports in a temp
dir, joined by `redis-cli --cluster create`, killed after. The shared Redis is never touched.

`node_timeout_ms` is the cluster's failure-detection time (`cluster-node-timeout`): a replica
is promoted about that long after its master stops answering, plus an election (about 1 s).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.crc import key_slot
from redis.exceptions import RedisError

STARTUP_SECONDS = 30.0


@dataclass
class ClusterNode:
    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    def client(self) -> Redis:
        return Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ClusterProcesses:
    def __init__(
        self, directory: Path, *, masters: int = 3, replicas: int = 0, node_timeout_ms: int = 1000
    ) -> None:
        binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        assert binary, "these tests need redis-server on PATH (apt-get install redis-server)"
        assert cli, "these tests need redis-cli on PATH (apt-get install redis-tools)"
        self.binary, self.cli = binary, cli
        self.masters, self.replicas = masters, replicas
        self.node_timeout_ms = node_timeout_ms
        self.nodes = [
            ClusterNode(port, directory / str(port))
            for port in (_cluster_port() for _ in range(masters * (1 + replicas)))
        ]

    @property
    def url(self) -> str:
        """A seed node; the client discovers the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            node.process = subprocess.Popen(
                [
                    self.binary,
                    "--port", str(node.port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    # As docs/operations.md advises: the other masters serve while one fails.
                    "--cluster-require-full-coverage", "no",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(node.directory),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for node in self.nodes:
            _wait(lambda node=node: node.client().ping(), "a node did not start")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        created = subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas",
             str(self.replicas), "--cluster-yes"],
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert created.returncode == 0, created.stdout.decode() + created.stderr.decode()
        _wait(self._settled, "the cluster did not settle")

    def _settled(self) -> bool:
        """Every node sees every slot served and, with replicas, every replica in sync."""
        for node in self.nodes:
            if not node.alive:
                continue
            with node.client() as client:
                info = client.cluster("info")
                if info["cluster_state"] != "ok" or int(info["cluster_slots_ok"]) != 16384:
                    return False
                replication = client.info("replication")
                if replication["role"] == "slave" and replication["master_link_status"] != "up":
                    return False
        return True

    def master_of(self, key: str) -> ClusterNode:
        """The node serving `key`'s slot now."""
        slot = key_slot(key.encode())
        for node in self.nodes:
            if not node.alive:
                continue
            with node.client() as client:
                for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        port = int(master[1])
                        return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"no node serves slot {slot}")

    def kill(self, node: ClusterNode) -> None:
        assert node.process is not None
        node.process.kill()
        node.process.wait(timeout=10)

    def wait_promoted(self, key: str, instead_of: ClusterNode, timeout: float = 30.0) -> None:
        """Until another node serves `key` and the cluster says ok again."""
        _wait(
            lambda: self.master_of(key) is not instead_of and self._state_ok(),
            "no replica was promoted",
            timeout,
        )

    def _state_ok(self) -> bool:
        for node in self.nodes:
            if node.alive:
                with node.client() as client:
                    if client.cluster("info")["cluster_state"] != "ok":
                        return False
        return True

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive:
                self.kill(node)


def _cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = random.randrange(20000, 45000)
        if _free(port) and _free(port + 10000):
            return port


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _wait(check: object, message: str, timeout: float = STARTUP_SECONDS) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


@contextmanager
def own_cluster(directory: Path, *, replicas: int = 0) -> Iterator[ClusterProcesses]:
    cluster = ClusterProcesses(directory, replicas=replicas)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
