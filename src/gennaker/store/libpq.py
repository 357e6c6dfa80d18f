"""The engine's hot statements on PostgreSQL, sent on libpq beneath psycopg's connection.

Through psycopg's cursor a hot statement costs about twice the client CPU it does on libpq: psycopg
adapts each value by its Python type, manages its own prepared statements and sets up a result
around every call; and the first statement of a transaction costs a round trip of its own for
``BEGIN``. Here (used by ``hot.execute``) a hot statement is prepared once per connection, with its
result columns described then, so that how each is read is known before it first runs; its values
are sent as text, encoded by their SQLAlchemy types as SQLAlchemy would hand them to psycopg; and a
transaction's ``BEGIN`` goes in one pipeline with its first statement: one round trip, not two.

It is used only where it means what the cursor would: a connection psycopg would begin with a plain
``BEGIN`` (no isolation level, read-only or deferrable setting of its own), not in autocommit and
not in a pipeline of psycopg's; values of the types it encodes; result columns of the types it
reads. Anywhere else the statement goes through the cursor, as before. Waiting for the server is a
``poll`` on the socket (the GIL is released meanwhile: a worker's other threads run), as psycopg's is.
"""

from __future__ import annotations

import json
import re
import select
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg import OperationalError, pq
from psycopg.errors import error_from_result
from sqlalchemy import ARRAY, JSON, Boolean, Dialect

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%")


class Unsupported(Exception):
    """This value or statement is not one this module sends: the caller uses the cursor."""


def _text(value: Any) -> bytes | None:
    """A value as psycopg would receive it from SQLAlchemy, in PostgreSQL's text input form (the
    statement's casts, or its columns, give it its type on the server)."""
    if value is None:
        return None
    if isinstance(value, str):  # (a str enum too: its value)
        return _no_nul(value.encode())
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()  # (exact, and PostgreSQL reads inf and nan as they are written)
    raise Unsupported(type(value).__name__)


def _no_nul(text: bytes) -> bytes:
    """libpq reads a text parameter up to its first NUL: one would cut the value short, silently.
    (PostgreSQL's text holds none: psycopg refuses such a value, with the error SQLAlchemy raises.)"""
    if b"\x00" in text:
        raise Unsupported("a NUL in a text value")
    return text


def _array_of_text(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise Unsupported("an array of other than strings")
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value)
    return _no_nul(("{" + ",".join(quoted) + "}").encode())


def _encoder(type_: Any, dialect: Dialect) -> Callable[[Any], bytes | None]:
    """How a bind parameter of this SQLAlchemy type is sent."""
    impl = type_.dialect_impl(dialect)
    if isinstance(impl, JSON):  # serialized as SQLAlchemy does (None is JSON null unless none_as_null)
        serialize = JSON._make_bind_processor(impl, None, getattr(dialect, "_json_serializer", None) or json.dumps)
        return lambda v: _text(serialize(v))
    if isinstance(impl, ARRAY):
        return _array_of_text
    process = impl.bind_processor(dialect)
    if process is None:
        return _text
    if isinstance(impl, Boolean) or type(impl).__name__.startswith("_PGJSON"):  # (their processors only check
        return lambda v: _text(process(v))  # or pass the value: a bool, a JSON index)
    raise Unsupported(f"a parameter of type {type(impl).__name__}")


def _loader(oid: int, dialect: Dialect) -> Callable[[bytes], Any]:
    """How a result column of this PostgreSQL type is read from its text form."""
    if oid == 16:
        return lambda b: b == b"t"
    if oid in (20, 21, 23):
        return int
    if oid in (700, 701):
        return float
    if oid in (19, 25, 705, 1042, 1043):
        return bytes.decode
    if oid in (114, 3802):
        loads: Callable[[bytes], Any] = getattr(dialect, "_json_deserializer", None) or json.loads
        return loads
    raise Unsupported(f"a result column of type oid {oid}")


@dataclass
class Statement:
    """One hot statement as libpq runs it."""

    name: bytes  # its prepared statement's name, the same on every connection
    sql: bytes
    params: list[tuple[str, Callable[[Any], bytes | None]]]  # in ``$n`` order: bind name, encoder
    result_types: Sequence[Any]
    make_row: Callable[[list[Any]], Any] | None = None  # settled at the first description
    loaders: list[Callable[[bytes], Any]] = field(default_factory=list)
    usable: bool = True  # False once its description showed a result column it cannot read


def statement(
    sql: str, binds: Mapping[str, Any], result_types: Sequence[Any], name: str, dialect: Dialect
) -> Statement | None:
    """``sql`` as SQLAlchemy compiled it for psycopg (``%(name)s`` placeholders), or None if a parameter
    is of a type this module does not send."""
    order: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        return f"${order.setdefault(m.group(1), len(order) + 1)}"

    text = _PLACEHOLDER.sub(number, sql)
    try:
        params = [(n, _encoder(binds[n].type, dialect)) for n in order]
    except (Unsupported, KeyError):
        return None
    return Statement(name.encode(), text.encode(), params, result_types)


class Connections:
    """Which statements are prepared on which connection (a new connection has none)."""

    def __init__(self, dialect: Dialect, make_row_class: Callable[[list[str]], Any]):
        self.dialect = dialect
        self.make_row_class = make_row_class
        # (None: a connection whose encoding is not UTF-8, which this module does not speak)
        self._prepared: weakref.WeakKeyDictionary[Any, set[bytes] | None] = weakref.WeakKeyDictionary()

    def usable(self, raw: Any) -> bool:
        """Whether this psycopg connection's state is one this module runs statements in."""
        pg = getattr(raw, "pgconn", None)
        if pg is None or raw.autocommit or pg.pipeline_status != pq.PipelineStatus.OFF:
            return False
        status = pg.transaction_status
        if status == pq.TransactionStatus.INTRANS:
            return True
        # a transaction to begin: only if psycopg would begin it with a plain BEGIN
        plain = raw.isolation_level is None and raw.read_only is None and raw.deferrable is None
        return status == pq.TransactionStatus.IDLE and plain

    def execute(self, raw: Any, stmt: Statement, values: Mapping[str, Any]) -> tuple[list[Any], int] | None:
        """Run ``stmt``: (rows, rowcount), or None, with nothing sent, where it cannot (the caller's cursor
        runs it then). A server's or a connection's error is raised as psycopg's."""
        if not stmt.usable or not self.usable(raw):
            return None
        try:
            return self._execute(raw, stmt, values)
        except Unsupported:
            return None

    def _execute(self, raw: Any, stmt: Statement, values: Mapping[str, Any]) -> tuple[list[Any], int]:
        if raw not in self._prepared:  # a connection new to it
            self._prepared[raw] = set() if raw.info.encoding == "utf-8" else None
        prepared = self._prepared[raw]
        if prepared is None:
            raise Unsupported("a connection whose encoding is not UTF-8")
        encoded = [encode(values[n]) for n, encode in stmt.params]
        with raw.lock:
            pg = raw.pgconn
            if stmt.name not in prepared:
                self._prepare(raw, stmt)
                prepared.add(stmt.name)
            try:
                if pg.transaction_status == pq.TransactionStatus.IDLE:
                    res = _begin_and_run(raw, stmt.name, encoded)
                else:
                    res = _one(raw, lambda: pg.send_query_prepared(stmt.name, encoded))
            except Exception as exc:
                if getattr(exc, "sqlstate", None) == "26000":  # our statement is gone (DEALLOCATE ALL)
                    prepared.clear()
                raise
        rowcount = res.command_tuples
        if not stmt.result_types:
            return [], rowcount if rowcount is not None else -1
        assert stmt.make_row is not None
        loaders, get, make = stmt.loaders, res.get_value, stmt.make_row
        rows = [
            make([None if (v := get(r, c)) is None else load(v) for c, load in enumerate(loaders)])
            for r in range(res.ntuples)
        ]
        return rows, rowcount if rowcount is not None else len(rows)

    def _prepare(self, raw: Any, stmt: Statement) -> None:
        pg = raw.pgconn
        _one(raw, lambda: pg.send_prepare(stmt.name, stmt.sql))
        desc = _one(raw, lambda: pg.send_describe_prepared(stmt.name))
        if stmt.make_row is not None:
            return
        if not stmt.result_types:  # no rows are read (the key SQLAlchemy RETURNs from an INSERT: not ours)
            stmt.make_row = tuple
            return
        oids = [desc.ftype(i) for i in range(desc.nfields)]
        try:
            if len(oids) != len(stmt.result_types):  # (columns that are not the statement's own)
                raise Unsupported("result columns of types not known")
            loaders = [_loader(oid, self.dialect) for oid in oids]
        except Unsupported:
            stmt.usable = False  # (prepared, never run: the cursor runs it, now and from now on)
            raise
        # with SQLAlchemy's result processors on top, as it would apply them (usually none)
        processors = [
            t.dialect_impl(self.dialect).result_processor(self.dialect, oid)
            for t, oid in zip(stmt.result_types, oids, strict=True)
        ]
        for i, p in enumerate(processors):
            if p is not None:
                loaders[i] = (lambda load, proc: lambda b: proc(load(b)))(loaders[i], p)
        stmt.loaders = loaders
        stmt.make_row = self.make_row_class([(desc.fname(i) or b"").decode() for i in range(desc.nfields)])._make


def _poll(pg: Any, events: int) -> None:
    """Block (the GIL released) until the socket is ready, then read what has arrived."""
    poller = select.poll()
    poller.register(pg.socket, events)
    poller.poll()
    pg.consume_input()


def _wait(pg: Any) -> None:
    """Until a result can be read without blocking. Input is read only while libpq lacks it: a
    statement's end is usually read with its result."""
    while pg.is_busy():
        _poll(pg, select.POLLIN)


def _flush(pg: Any) -> None:
    while pg.flush():  # (a nonblocking connection's send buffer is full: wait until it drains)
        _poll(pg, select.POLLOUT | select.POLLIN)


def _check(raw: Any, res: Any) -> Any:
    if res.status not in _OK:
        raise error_from_result(res, encoding=raw.info.encoding)
    return res


def _one(raw: Any, send: Callable[[], None]) -> Any:
    """Send one command and read its one result."""
    pg = raw.pgconn
    send()
    _flush(pg)
    results = []
    while True:
        _wait(pg)
        res = pg.get_result()
        if res is None:
            break
        results.append(res)
    if not results:
        raise _no_result(raw)
    for res in results:
        _check(raw, res)
    return results[-1]


def _begin_and_run(raw: Any, name: bytes, encoded: list[bytes | None]) -> Any:
    """``BEGIN`` and the transaction's first statement in one pipeline: one round trip."""
    pg = raw.pgconn
    pg.enter_pipeline_mode()
    try:
        pg.send_query_params(b"BEGIN", None)
        pg.send_query_prepared(name, encoded)
        pg.pipeline_sync()
        _flush(pg)
        results = []
        while True:  # BEGIN's result, the statement's, then the sync's (Nones between them)
            _wait(pg)
            res = pg.get_result()
            if res is None:
                continue
            if res.status == pq.ExecStatus.PIPELINE_SYNC:
                break
            results.append(res)
    except BaseException:
        # a connection left in pipeline mode would fail whatever psycopg sends next: if it cannot
        # leave it, it is closed (psycopg then reports it broken, and the pool replaces it)
        try:
            pg.exit_pipeline_mode()
        except Exception:
            pg.finish()
        raise
    pg.exit_pipeline_mode()
    for res in results:
        if res.status == pq.ExecStatus.PIPELINE_ABORTED:
            continue  # (after the error that aborted it, raised below)
        _check(raw, res)
    if len(results) != 2:
        raise _no_result(raw)
    return _check(raw, results[1])


def _no_result(raw: Any) -> Exception:
    why = raw.pgconn.error_message.decode(errors="replace").strip() or "the connection was lost"
    return OperationalError(f"the statement got no result: {why}")
