"""The engine's hot statements, sent to the driver directly.

A no-op stage is four or five prebuilt statements, and most of a worker's CPU per statement was
SQLAlchemy's execution around the driver's (the compiled-cache lookup, building parameters, setting
up a result and its column descriptions), not the statement itself; on SQLite, where a statement is
a function call and not a round trip, that was most of a stage's time. ``execute`` compiles each
statement once per parameter shape, exactly as SQLAlchemy would for the dialect, and then only
binds the values (with the types' own bind processors), runs the SQL on the DBAPI connection of the
caller's transaction (psycopg or sqlite3), and makes the rows (with the types' result processors):
the same SQL, in the same transaction, the same values back.

It steps aside, and SQLAlchemy executes as usual, where it could differ: for an engine without
``HotStatements``, when anyone listens to the engine's statement events (the tests and benches that
count statements), and for an expanding ``IN`` or a callable bind value. A driver error is raised as
SQLAlchemy's (``DBAPIError``), and a connection the error broke is invalidated, so callers and the
pool see what they would have seen.
"""

from __future__ import annotations

import itertools
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError, MultipleResultsFound, NoResultFound

ATTRIBUTE = "gennaker_hot_statements"  # where an engine's dialect keeps its HotStatements
# The engine's hot statements are prebuilt (a few dozen shapes). A caller that builds a statement per
# call must not grow the cache without end: past this many, new ones go through SQLAlchemy.
MAX_STATEMENTS = 256


class Rows:
    """The part of SQLAlchemy's Result the engine reads: rows by attribute, index and ``_mapping``."""

    def __init__(self, rows: list[Any], rowcount: int):
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def all(self) -> list[Any]:
        return list(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if not self._rows:
            raise NoResultFound("No row was found when one was required")
        if len(self._rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self._rows[0]

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> Rows:
        return Rows([r[0] for r in self._rows], self.rowcount)


def row_class(names: Sequence[str]) -> Any:
    """A row type as this module makes them: a named tuple with ``_mapping`` (SQLAlchemy's Row's)."""
    base = namedtuple("Row", names, rename=True)  # type: ignore[misc]  # (names are known only here)

    def mapping(self: Any) -> dict[str, Any]:  # ``_mapping`` as SQLAlchemy's Row has it, by column name
        return dict(zip(names, self, strict=True))

    return type("Row", (base,), {"__slots__": (), "_mapping": property(mapping)})


@dataclass
class _Compiled:
    sql: str
    order: tuple[str, ...] | None  # a positional paramstyle's (sqlite3's ``?``) bind names, in order
    defaults: dict[str, Any]  # the statement's own values (literals SQLAlchemy made bind parameters)
    processors: dict[str, Callable[[Any], Any]]
    result_types: list[Any]  # the result columns' types, to check their result processors once
    make_row: Callable[[Sequence[Any]], Any] | None = None  # known after the first execution
    pq: Any = None  # PostgreSQL: the statement as store/libpq.py runs it (None: it cannot)


class HotStatements:
    """A dialect's compiled hot statements (one per engine: no global cache)."""

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        # sqlite3 runs a statement as its rows are read: one that returns rows nobody wants is
        # still read to its end (psycopg has them all once the statement returns)
        self.read_to_end = dialect.name == "sqlite"
        # by the statement's id (kept beside its entry, so that the id is never another's) and the
        # parameters' names (an UPDATE sets the columns it is given values for)
        self._compiled: dict[tuple[int, frozenset[str]], tuple[Any, _Compiled | None]] = {}
        self._names = itertools.count()
        self.libpq: Any = None  # psycopg's connections: statements run on libpq beneath it
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            from gennaker.store import libpq  # (psycopg is installed only for PostgreSQL)

            self.libpq = libpq.Connections(dialect, row_class)

    def ways(self) -> list[tuple[Any, str]]:
        """Each statement compiled so far and how it runs now: on ``libpq``, on the ``driver``'s cursor,
        or through ``sqlalchemy`` (for the tests that hold the engine's statements to the fast path)."""
        out = []
        for statement, entry in list(self._compiled.values()):
            if entry is None:
                out.append((statement, "sqlalchemy"))
            else:
                out.append((statement, "libpq" if entry.pq is not None and entry.pq.usable else "driver"))
        return out

    def compiled(self, statement: Any, keys: frozenset[str]) -> _Compiled | None:
        key = (id(statement), keys)
        try:
            return self._compiled[key][1]
        except KeyError:
            if len(self._compiled) >= MAX_STATEMENTS:
                return None
        compiled = statement.compile(dialect=self.dialect, column_keys=sorted(keys))
        entry: _Compiled | None = None
        # (an expanding IN is rendered per count of values, a callable value per execution)
        if not any(b.expanding or b.callable is not None for b in compiled.binds.values()):
            processors = {}
            for name, bind in compiled.binds.items():
                proc = bind.type.dialect_impl(self.dialect).bind_processor(self.dialect)
                if proc is not None:
                    processors[name] = proc
            defaults = {n: b.effective_value for n, b in compiled.binds.items() if n not in keys and not b.required}
            columns: Any = getattr(statement, "exported_columns", None) or getattr(statement, "selected_columns", ())
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            entry = _Compiled(compiled.string, order, defaults, processors, [c.type for c in columns])
            if self.libpq is not None:
                from gennaker.store import libpq

                name = f"gennaker_{next(self._names)}"  # (itertools.count: unique across threads too)
                entry.pq = libpq.statement(entry.sql, compiled.binds, entry.result_types, name, self.dialect)
        self._compiled[key] = (statement, entry)
        return entry


def execute(conn: Connection, statement: Any, params: Mapping[str, Any]) -> Any:
    """``conn.execute(statement, params)``, run on the driver directly where it can be (see the module)."""
    hot: HotStatements | None = getattr(conn.dialect, ATTRIBUTE, None)
    if hot is None or conn.dispatch.before_cursor_execute or conn.dispatch.after_cursor_execute:
        return conn.execute(statement, params)
    entry = hot.compiled(statement, frozenset(params))
    if entry is None:
        return conn.execute(statement, params)
    values = {**entry.defaults, **params}
    if not conn.in_transaction():
        conn.begin()  # as SQLAlchemy's first statement would (on SQLite: Database.read's BEGIN)
    raw: Any = conn.connection.driver_connection
    if entry.pq is not None:
        try:
            ran = hot.libpq.execute(raw, entry.pq, values)  # (None: nothing was sent; the cursor runs it)
        except raw.Error as exc:
            raise _driver_error(conn, hot, entry.sql, values, exc, raw) from exc
        if ran is not None:
            return Rows(*ran)
    for name, proc in entry.processors.items():
        values[name] = proc(values[name])
    bound: Any = values if entry.order is None else [values[n] for n in entry.order]
    cur = raw.cursor()
    try:
        cur.execute(entry.sql, bound)
        # A statement with no result columns of its own returns no rows (SQLAlchemy adds RETURNING
        # of the key to an INSERT whose caller reads none). The cursor's description is read only
        # once: psycopg builds a column object per column at every reading.
        if not entry.result_types:
            if hot.read_to_end:
                cur.fetchall()
            return Rows([], cur.rowcount)
        make_row = entry.make_row or _settle(hot.dialect, entry, cur.description)
        return Rows([make_row(r) for r in cur.fetchall()], cur.rowcount)
    except raw.Error as exc:
        raise _driver_error(conn, hot, entry.sql, bound, exc, raw) from exc
    finally:
        cur.close()


def _driver_error(conn: Connection, hot: HotStatements, sql: str, bound: Any, exc: Exception, raw: Any) -> Exception:
    """The driver's error as SQLAlchemy raises it; a connection it broke is invalidated first."""
    broken = bool(getattr(raw, "broken", False))  # (psycopg's: the connection is lost)
    if broken:
        conn.invalidate(exc)
    return DBAPIError.instance(sql, bound, exc, raw.Error, connection_invalidated=broken, dialect=hot.dialect)


def _settle(dialect: Dialect, entry: _Compiled, description: Sequence[Any]) -> Callable[[Sequence[Any]], Any]:
    """At a statement's first execution, when the result columns' database types are known: how a row
    is made, with each column's result processor as SQLAlchemy would apply it (usually none)."""
    if len(entry.result_types) != len(description):  # a statement whose columns are not its own
        raise RuntimeError(f"cannot tell the result columns' types of {entry.sql!r}")
    # (a column description is a sequence: name, type code, … for psycopg and sqlite3 alike)
    make = row_class([c[0] for c in description])._make
    processors = [
        type_.dialect_impl(dialect).result_processor(dialect, column[1])
        for type_, column in zip(entry.result_types, description, strict=True)
    ]
    if any(processors):

        def make_row(values: Sequence[Any]) -> Any:
            return make([v if p is None else p(v) for p, v in zip(processors, values, strict=True)])

        entry.make_row = make_row
    else:
        entry.make_row = make
    return entry.make_row
