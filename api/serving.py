"""`tenantgate serve`: checks before start-up, JSON logs, metrics across workers, graceful stop.

uvicorn runs N worker processes on one listening socket. Everything a request may depend on
is shared through PostgreSQL and Redis; the Prometheus values go to files in
PROMETHEUS_MULTIPROC_DIR so a scrape of any worker sums them all. On SIGTERM each worker stops
accepting, lets in-flight requests finish (up to `shutdown_grace` seconds), then shuts down.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

from api.metrics import MULTIPROC_ENV, multiprocess_dir, prepare_multiprocess_dir
from api.observability import logging_config
from config.settings import Environment, Settings

# Room for the request line on top of the header limit the app enforces itself (431).
REQUEST_LINE_ALLOWANCE = 8192
# uvicorn kills a worker that misses its health check for this long (its default, 5 s, kills
# workers that are merely slow to start or answer on a host whose CPUs are saturated).
WORKER_HEALTHCHECK_TIMEOUT = 30


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str
    port: int
    workers: int
    shutdown_grace: int = 20


def refusals(settings: Settings, *, has_signing_key: bool) -> list[str]:
    """One line per reason production must not start on this configuration."""
    if settings.env is not Environment.PRODUCTION:
        return []
    problems = settings.production_problems()
    if not has_signing_key:
        problems.append(
            "no signing key is provisioned; run `tenantgate keys rotate` once (production does "
            "not generate keys on start-up)"
        )
    return problems


def prepare_metrics(workers: int) -> str | None:
    """Multiprocess metrics when several workers run (or the operator set the directory).

    Must run before any worker imports prometheus_client: the value store is chosen at import.
    Returns the directory when this function created it (to be removed after the server).
    """
    directory = multiprocess_dir()
    if directory is not None:
        prepare_multiprocess_dir(directory)
        return None
    if workers == 1:
        return None
    directory = tempfile.mkdtemp(prefix="tenantgate-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory


def serve(settings: Settings, options: ServeOptions) -> None:
    created = prepare_metrics(options.workers)
    # Workers read it at start-up: without Redis, several workers warn that limits are per worker.
    os.environ["TENANTGATE_WORKERS"] = str(options.workers)
    try:
        _run(settings, options)
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


def _run(settings: Settings, options: ServeOptions) -> None:
    import uvicorn  # here, not at import: every other CLI command would pay for it

    uvicorn.run(
        "api.asgi:app",
        host=options.host,
        port=options.port,
        workers=options.workers,
        proxy_headers=False,  # X-Forwarded-For is read only from TENANTGATE_TRUSTED_PROXIES
        server_header=False,
        log_config=logging_config(settings),
        access_log=False,  # tenantgate.access writes one JSON line per request instead
        h11_max_incomplete_event_size=settings.header_limit_bytes + REQUEST_LINE_ALLOWANCE,
        timeout_graceful_shutdown=options.shutdown_grace,
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT,
    )
