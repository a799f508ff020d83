"""Reports served from the report cache (storage/report_cache.py), with their ETags.

A miss computes the report from the database and stores it under the generation read before
computing; item writes call `invalidate_reports` after they commit and before they answer.
"""

from __future__ import annotations

from typing import cast

from starlette.requests import HTTPConnection

from api.conditional import weak_etag
from api.metrics import Metrics
from api.schemas.reports import InventoryReport
from storage import items
from storage.database import Database
from storage.report_cache import CachedReport, ReportCache
from storage.tables import utcnow

INVENTORY = "inventory"


def _cache(connection: HTTPConnection) -> ReportCache:
    return cast(ReportCache, connection.app.state.report_cache)


async def inventory_report(connection: HTTPConnection, tenant: str) -> CachedReport:
    cache = _cache(connection)
    metrics = getattr(connection.app.state, "metrics", None)
    lookup = await cache.lookup(tenant, INVENTORY)
    if lookup.entry is not None:
        _count(metrics, "hit")
        return lookup.entry
    database = cast(Database, connection.app.state.database)
    report = InventoryReport.of(utcnow(), await items.inventory(database.driver, tenant))
    # The tag covers the figures, not `generated_at`: a report regenerated from the same data
    # (say, after an item was only renamed) keeps its tag, and clients keep their copy.
    figures = report.model_dump_json(include={"categories", "totals"}).encode()
    entry = CachedReport(weak_etag(figures), report.model_dump_json().encode())
    if lookup.generation is None:
        _count(metrics, "bypass")
        return entry
    await cache.store(tenant, INVENTORY, lookup.generation, entry)
    _count(metrics, "miss")
    return entry


async def invalidate_reports(connection: HTTPConnection, tenant: str) -> None:
    """After a committed write of the tenant's items, before its response."""
    await _cache(connection).invalidate(tenant)


def _count(metrics: object, result: str) -> None:
    if isinstance(metrics, Metrics):
        metrics.report_cache_lookup(result)
