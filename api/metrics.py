"""Prometheus metrics, correct with several worker processes.

With PROMETHEUS_MULTIPROC_DIR set (`tenantgate serve --workers N` sets it), every worker writes
its values to files in that directory and a scrape of any worker sums them. Labels are bounded:
route templates (never raw paths), methods from a fixed set, status codes, and reasons and
grant types chosen by the code, never by the caller.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from storage.guard_failover import FailoverGuardStore
from storage.guard_state import Outcome, Verdict

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
DECISIONS = {
    Outcome.OK: "allowed",
    Outcome.LIMITED: "limited",
    Outcome.REVOKED: "revoked",
    Outcome.SUSPENDED: "suspended",
    Outcome.UNKNOWN_TENANT: "unknown_tenant",
}
_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
REPORT_CACHE = "tenantgate_report_cache_lookups"
REPORT_CACHE_RESULTS = ("hit", "miss", "bypass")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def prepare_multiprocess_dir(path: str) -> None:
    """Start without the files of an earlier run: they would be counted again.

    Only the metric files (*.db) are removed, whatever else an operator keeps there.
    """
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def bounded(value: str) -> str:
    """A label value chosen by code; anything unexpected collapses into `other`."""
    return value if _LABEL.match(value) else "other"


class Metrics:
    """The series of one app. Single process: its own registry. Multiprocess: the shared files."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        self.registry = CollectorRegistry()
        # In multiprocess mode values go to files; the registry only collects them at scrape.
        own = None if self.multiprocess else self.registry
        if self.multiprocess:
            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        http = ("method", "route", "status")
        self.requests = Counter(
            "tenantgate_http_requests", "HTTP requests answered", http, registry=own
        )
        self.latency = Histogram(
            "tenantgate_http_request_duration_seconds",
            "Time to answer an HTTP request",
            http,
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.auth_failures = Counter(
            "tenantgate_auth_failures",
            "Rejected credentials: bearer tokens by reason, token endpoint errors by error code",
            ("kind", "reason"),
            registry=own,
        )
        self.rate_limit_decisions = Counter(
            "tenantgate_rate_limit_decisions",
            "Admission decisions of the guard (rate limit, revocation, tenant status)",
            ("decision",),
            registry=own,
        )
        self.limiter_degraded = Gauge(
            "tenantgate_limiter_degraded",
            "1 while a worker admits from its in-process store because Redis is unreachable",
            registry=own,
            multiprocess_mode="livemax",
        )
        self.fallback_admissions = Counter(
            "tenantgate_limiter_fallback_admissions",
            "Admissions decided by the in-process store while Redis was unreachable",
            registry=own,
        )
        self.breaker_trips = Counter(
            "tenantgate_limiter_breaker_trips",
            "Times the Redis circuit breaker of the guard store opened (a sustained failure "
            "while it was closed)",
            registry=own,
        )
        self.tokens_issued = Counter(
            "tenantgate_tokens_issued",
            "Access tokens issued, by OAuth 2 grant type",
            ("grant_type",),
            registry=own,
        )
        self.report_cache = Counter(
            REPORT_CACHE,
            "Report reads by cache result: hit (served from the cache), miss (computed and "
            "stored), bypass (computed; the cache was unusable)",
            ("result",),
            registry=own,
        )
        self.audit_streams = Gauge(
            "tenantgate_audit_streams",
            "Open audit streams (WebSocket), summed over live workers",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.audit_stream_closes = Counter(
            "tenantgate_audit_stream_closes",
            "Audit streams ended, by reason: client, expired, revoked, suspended, slow, "
            "shutdown, error",
            ("reason",),
            registry=own,
        )
        self.audit_deliveries = Counter(
            "tenantgate_audit_stream_deliveries",
            "Audit events handed to this worker's streams, by where the event came from: "
            "this_worker, other_worker (Redis), database (the poll found it)",
            ("origin",),
            registry=own,
        )
        source = (
            multiprocess.MultiProcessCollector(None).collect  # type: ignore[no-untyped-call]
            if self.multiprocess
            else self.report_cache.collect
        )
        self.registry.register(HitRatio(source))
        self._http_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._seen_fallback = 0
        self._seen_trips = 0
        self._degraded: bool | None = None

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            labels = (method if method in METHODS else "OTHER", route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_admission(self, verdict: Verdict) -> None:
        self.rate_limit_decisions.labels(DECISIONS.get(verdict.outcome, "other")).inc()

    def observe_guard(self, guard: object) -> None:
        """Follow the failover store's state (it changes only while requests pass through it)."""
        if not isinstance(guard, FailoverGuardStore):
            return
        if guard.degraded is not self._degraded:
            self._degraded = guard.degraded
            self.limiter_degraded.set(int(guard.degraded))
        delta = guard.fallback_admissions - self._seen_fallback
        if delta > 0:
            self.fallback_admissions.inc(delta)
            self._seen_fallback = guard.fallback_admissions
        trips = guard.trips - self._seen_trips
        if trips > 0:
            self.breaker_trips.inc(trips)
            self._seen_trips = guard.trips

    def auth_failure(self, kind: str, reason: str) -> None:
        self.auth_failures.labels(kind, bounded(reason)).inc()

    def token_issued(self, grant_type: str) -> None:
        self.tokens_issued.labels(bounded(grant_type)).inc()

    def audit_fanout(self, origin: str, listeners: int) -> None:
        self.audit_deliveries.labels(bounded(origin)).inc(listeners)

    def audit_stream_closed(self, reason: str) -> None:
        self.audit_stream_closes.labels(bounded(reason)).inc()

    def report_cache_lookup(self, result: str) -> None:
        self.report_cache.labels(result if result in REPORT_CACHE_RESULTS else "other").inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def lifespan(self, inner: Lifespan) -> Lifespan:
        """`inner`, then drop this worker's live gauges when it shuts down."""

        @asynccontextmanager
        async def run(app: FastAPI) -> AsyncIterator[None]:
            async with inner(app):
                yield
            if self.multiprocess:
                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

        return run


class HitRatio:
    """tenantgate_report_cache_hit_ratio: hits over all report reads since start, from the
    counter as scraped (so summed over every worker in multiprocess mode)."""

    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        hits = total = 0.0
        for metric in self._source():
            if metric.name != REPORT_CACHE:
                continue
            for sample in metric.samples:
                if sample.name == REPORT_CACHE + "_total":
                    total += sample.value
                    hits += sample.value if sample.labels.get("result") == "hit" else 0.0
        yield GaugeMetricFamily(
            "tenantgate_report_cache_hit_ratio",
            "Share of report reads served from the cache since start (0 before any)",
            value=hits / total if total else 0.0,
        )


def metrics_of(request: Request) -> Metrics:
    return cast(Metrics, request.app.state.metrics)


def record_auth_failure(request: Request, kind: str, reason: str) -> None:
    """Count a rejected credential (no-op for an app built without metrics)."""
    metrics = getattr(request.app.state, "metrics", None)
    if isinstance(metrics, Metrics):
        metrics.auth_failure(kind, reason)
