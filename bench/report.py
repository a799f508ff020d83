"""The benchmark's table and the issue's targets, each a ratio of rows measured side by side."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Sequence
from typing import Protocol


class Row(Protocol):
    name: str

    @property
    def rps(self) -> float: ...

    def percentile(self, fraction: float) -> float: ...


# (what, how it is computed from the rows by name, the target it is held to)
Check = tuple[str, Callable[[dict[str, Row]], float], str, Callable[[float], bool]]


def _ratio(top: str, bottom: str) -> Callable[[dict[str, Row]], float]:
    return lambda rows: rows[top].rps / rows[bottom].rps


def _p99(top: str, bottom: str) -> Callable[[dict[str, Row]], float]:
    return lambda rows: rows[top].percentile(0.99) / rows[bottom].percentile(0.99)


def _at_least(target: float) -> Callable[[float], bool]:
    return lambda value: value >= target


def _at_most(target: float) -> Callable[[float], bool]:
    return lambda value: value <= target


CHECKS: list[Check] = [
    (
        "item read / /health, SQLite + Redis",
        _ratio("item read, SQLite + Redis", "/health"),
        ">= 0.5",
        _at_least(0.5),
    ),
    (
        "item read / /health, embedded",
        _ratio("item read, embedded", "/health"),
        ">= 0.5",
        _at_least(0.5),
    ),
    (
        "item read / /health, PostgreSQL + Redis",
        _ratio("item read, PostgreSQL + Redis", "/health"),
        ">= 0.5",
        _at_least(0.5),
    ),
    (
        "item read / baseline (HS256 + ORM)",
        _ratio("item read, embedded", "baseline: HS256 + ORM user + query"),
        ">= 3",
        _at_least(3),
    ),
    (
        "item read p99 / /health p99, SQLite + Redis",
        _p99("item read, SQLite + Redis", "/health"),
        "<= 2",
        _at_most(2),
    ),
    (
        "list page of 50 / /health, SQLite + Redis",
        _ratio("list page of 50, SQLite + Redis", "/health"),
        ">= 0.2",
        _at_least(0.2),
    ),
    (
        "list page of 50 / /health, PostgreSQL + Redis",
        _ratio("list page of 50, PostgreSQL + Redis", "/health"),
        ">= 0.2",
        _at_least(0.2),
    ),
    (
        "create item / /health, SQLite + Redis",
        _ratio("create item, SQLite + Redis", "/health"),
        ">= 0.2",
        _at_least(0.2),
    ),
    (
        "create item / /health, PostgreSQL + Redis",
        _ratio("create item, PostgreSQL + Redis", "/health"),
        ">= 0.2",
        _at_least(0.2),
    ),
    ("/v1/me / /health, Redis", _ratio("/v1/me, Redis", "/health"), ">= 0.7", _at_least(0.7)),
    ("/v1/me / /health, embedded", _ratio("/v1/me, embedded", "/health"), ">= 0.7", _at_least(0.7)),
    (
        "inventory report (10,000 items) / /health, SQLite + Redis",
        _ratio("inventory report (10,000 items), SQLite + Redis", "/health"),
        "report",
        lambda _: True,
    ),
    (
        "inventory report (10,000 items) / /health, PostgreSQL + Redis",
        _ratio("inventory report (10,000 items), PostgreSQL + Redis", "/health"),
        "report",
        lambda _: True,
    ),
    (
        "2 workers / 1 worker, item read, SQLite + Redis",
        _ratio("item read, SQLite + Redis, 2 workers", "item read, SQLite + Redis"),
        "report",
        lambda _: True,
    ),
]


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def report(rows: Sequence[Row], requests: int, connections: int) -> str:
    by_name = {row.name: row for row in rows}
    health, bare = by_name["/health"], by_name["bare FastAPI /health"]
    lines = [
        f"{'row':52} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'x /health':>9} {'x bare':>7}",
        *(
            f"{row.name:52} {row.rps:>7.0f} {row.percentile(0.5):>7.2f} "
            f"{row.percentile(0.99):>7.2f} {row.rps / health.rps:>9.2f} {row.rps / bare.rps:>7.2f}"
            for row in rows
        ),
        "",
        f"{'target (ratios of rows above, one run)':62} {'value':>6}  {'target':>7}",
    ]
    for what, compute, target, met in CHECKS:
        try:
            value = compute(by_name)
        except KeyError:
            continue  # a row this run did not measure (no Redis or PostgreSQL configured)
        verdict = "" if target == "report" else ("met" if met(value) else "NOT MET")
        lines.append(f"{what:62} {value:>6.2f}  {target:>7} {verdict}")
    lines.append("")
    lines.append(f"{requests} requests per row, {connections} connections; {_machine()}")
    return "\n".join(lines)
