"""Hot statements: written once with SQLAlchemy Core, compiled once per dialect, run on the driver.

SQLAlchemy builds the SQL and knows how each column's values travel (JSON as text, UTC datetimes,
booleans as integers on SQLite). A `Statement` asks it once per dialect for the SQL text, the order
of the positional parameters and the value processors, and keeps them; executing it then costs
the driver's own call and a few tuple operations, not SQLAlchemy's execution path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from storage.errors import InvalidText

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Compiled:
    """One statement for one dialect: SQL text, positional parameters, value processors."""

    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]
    binds: Mapping[str, Processor]
    # (column index, processor) for the result columns that need converting.
    results: tuple[tuple[int, Processor], ...]

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = []
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            if isinstance(value, str) and "\x00" in value:
                # PostgreSQL cannot store NUL in text; SQLite could. Refuse it on both, alike.
                raise InvalidText("text must not contain NUL characters")
            bind = self.binds.get(name)
            values.append(value if bind is None or value is None else bind(value))
        return tuple(values)

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        if not self.results:
            return tuple(raw)
        values = list(raw)
        for index, process in self.results:
            value = values[index]
            if value is not None:
                values[index] = process(value)
        return tuple(values)


class Statement:
    """A Core statement with named `bindparam`s; `scan=True` marks reads of unbounded size
    (aggregates), which embedded drivers run off the event loop."""

    __slots__ = ("_compiled", "scan", "statement")

    def __init__(self, statement: sa.Executable, *, scan: bool = False) -> None:
        self.statement = statement
        self.scan = scan
        self._compiled: dict[str, Compiled] = {}

    def compiled(self, dialect: sa.Dialect) -> Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return found

    def __repr__(self) -> str:
        return f"Statement({str(self.statement)[:60]!r}...)"


def _compile(statement: sa.Executable, dialect: sa.Dialect) -> Compiled:
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    if not dialect.positional or compiled.positiontup is None:
        raise ValueError(f"{dialect.name}: hot statements need a positional paramstyle")
    binds: dict[str, Processor] = {}
    for parameter, name in compiled.bind_names.items():
        process = parameter.type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            binds[name] = process
    results = []
    columns = getattr(statement, "exported_columns", ())
    for index, column in enumerate(columns):
        process = column.type.dialect_impl(dialect).result_processor(dialect, None)
        if process is not None:
            results.append((index, process))
    defaults = {name: value for name, value in compiled.params.items() if value is not None}
    return Compiled(
        sql=compiled.string,
        names=tuple(compiled.positiontup),
        defaults=defaults,
        binds=binds,
        results=tuple(results),
    )
