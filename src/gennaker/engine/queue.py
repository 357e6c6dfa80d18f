"""A durable queue of messages in the database, each with a due time and a lease.

A worker claims due messages by setting a lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite
the write lock taken by BEGIN IMMEDIATE makes the claim atomic). It then handles a message and, in
the same transaction as the state change, deletes it and pushes the next ones. A worker that dies
stops extending its leases; its messages become claimable again when the lease runs out.

``affinity`` pins a message to one worker (the one holding a running process) while that worker's
heartbeat is fresh; once it is stale, anyone may claim the message and the stage learns its worker
was lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, and_, bindparam, delete, insert, or_, select, update

from gennaker.engine.messages import Message, RunTask, encode, kind, read_row
from gennaker.store import hot
from gennaker.store.db import Database
from gennaker.store.tables import messages, workers

M = TypeVar("M", bound=Message, covariant=True)


@dataclass(frozen=True)
class Delivery(Generic[M]):
    """A claimed message: its row id (to ack it), the message, and how often it was claimed."""

    id: int
    message: M
    attempts: int
    # The rows its handler would read, as the transaction that pushed it committed them (only for a
    # message handed straight to the thread that pushed it; see Engine._push). Never stored.
    snapshot: Any = field(default=None, compare=False, repr=False)

    @property
    def kind(self) -> str:
        return kind(type(self.message))


# Hot statements are built once; executing a prebuilt statement skips SQLAlchemy's construction work,
# which dominates the cost of a no-op stage.
_INSERT = insert(messages)
_OURS = and_(messages.c.id == bindparam("mid"), messages.c.lease_owner == bindparam("owner"))
_ACK = delete(messages).where(_OURS)


def _claim_statement(for_update: bool) -> Any:
    live = select(workers.c.id).where(workers.c.heartbeat_at >= bindparam("live_since"))
    due = (
        select(messages.c.id)
        .where(
            messages.c.held == False,  # noqa: E712  (an index-friendly comparison)
            messages.c.due_at <= bindparam("now"),
            or_(messages.c.lease_until.is_(None), messages.c.lease_until < bindparam("now")),
            or_(
                messages.c.affinity.is_(None), messages.c.affinity == bindparam("me"), messages.c.affinity.not_in(live)
            ),
        )
        .order_by(messages.c.due_at)
        .limit(bindparam("lim"))
    )
    if for_update:
        due = due.with_for_update(skip_locked=True, of=messages)
    return (
        update(messages)
        .where(messages.c.id.in_(due.scalar_subquery()))
        .values(lease_owner=bindparam("me"), lease_until=bindparam("until"), attempts=messages.c.attempts + 1)
        .returning(
            messages.c.id,
            messages.c.kind,
            messages.c.execution_id,
            messages.c.stage_id,
            messages.c.payload,
            messages.c.attempts,
        )
    )


_CLAIM = {False: _claim_statement(False), True: _claim_statement(True)}


def push(
    conn: Connection,
    message: Message,
    *,
    due_at: float,
    held: bool = False,
    affinity: str | None = None,
) -> None:
    kind_, execution_id, stage_id, payload = encode(message)
    hot.execute(
        conn,
        _INSERT,
        {
            "kind": kind_,
            "execution_id": execution_id,
            "stage_id": stage_id,
            "payload": payload,
            "due_at": due_at,
            "held": held,
            "affinity": affinity,
            "attempts": 0,
        },
    )


_INSERT_LEASED = insert(messages).returning(messages.c.id)


def _leased_row(message: Message, due_at: float, worker_id: str, until: float) -> dict[str, Any]:
    kind_, execution_id, stage_id, payload = encode(message)
    return {
        "kind": kind_,
        "execution_id": execution_id,
        "stage_id": stage_id,
        "payload": payload,
        "due_at": due_at,
        "held": False,
        "affinity": None,
        "attempts": 1,
        "lease_owner": worker_id,
        "lease_until": until,
    }


def push_leased(
    conn: Connection, message: Message, *, due_at: float, worker_id: str, until: float, snapshot: Any = None
) -> Delivery[Message]:
    """Push a message already claimed by ``worker_id`` (the worker that will handle it next, on the same
    thread): the claim is committed with the state change that made the message, so it costs no claim
    transaction of its own. Nobody else can claim it before ``until``; if the worker dies, the lease
    runs out and it is claimable like any other."""
    mid = hot.execute(conn, _INSERT_LEASED, _leased_row(message, due_at, worker_id, until)).scalar_one()
    return Delivery(int(mid), message, 1, snapshot)


# ``push_leased`` as a CTE that a handler folds into a statement of its own (PostgreSQL: one round trip
# less), with bind names of its own (``leased_params``) so they cannot clash with the host statement's.
_LEASED_COLUMNS = tuple(_leased_row(RunTask("", "", 0, 0), 0.0, "", 0.0))
LEASED_CTE = (
    insert(messages)
    .values({c: bindparam(f"m_{c}", type_=messages.c[c].type) for c in _LEASED_COLUMNS})
    .returning(messages.c.id)
    .cte("pushed")
)


def leased_params(message: Message, *, due_at: float, worker_id: str, until: float) -> dict[str, Any]:
    """The bind values of ``LEASED_CTE`` for this message."""
    return {f"m_{k}": v for k, v in _leased_row(message, due_at, worker_id, until).items()}


def claim(
    db: Database, worker_id: str, now: float, lease: float, limit: int, worker_ttl: float
) -> list[Delivery[Message]]:
    with db.begin() as conn:
        return claim_in(conn, worker_id, now, lease, limit, worker_ttl)


def claim_in(
    conn: Connection, worker_id: str, now: float, lease: float, limit: int, worker_ttl: float
) -> list[Delivery[Message]]:
    """Claim due messages in the caller's transaction: they are ours once it commits."""
    params = {"now": now, "me": worker_id, "until": now + lease, "lim": limit, "live_since": now - worker_ttl}
    rows = hot.execute(conn, _CLAIM[conn.dialect.name != "sqlite"], params).all()
    out = [Delivery(r.id, read_row(r.kind, r.execution_id, r.stage_id, r.payload or {}), r.attempts) for r in rows]
    out.sort(key=lambda d: d.id)
    return out


def ack(conn: Connection, delivery: Delivery[Message], worker_id: str) -> bool:
    """Delete a handled message; False if our lease was lost (someone else has it now)."""
    return hot.execute(conn, _ACK, {"mid": delivery.id, "owner": worker_id}).rowcount == 1


def ack_statement(drop_polls: bool) -> Any:
    """The ack as ``DELETE … RETURNING id``, for a handler that folds it into a statement of its own (a
    round trip is most of what a transition costs on PostgreSQL); acked if ``:mid`` is among the ids.
    ``drop_polls``: it also deletes the leftover polls (``drop_stage_polls``) of ``:sid`` up to
    ``:attempt``, for the handling of a stage's last task. A later attempt's polls are never touched."""
    return _ACK_RETURNING[drop_polls]


def release(db: Database, delivery: Delivery[Message], worker_id: str, due_at: float) -> None:
    """Give a message back (e.g. after a failed handling) to be tried again at ``due_at``."""
    with db.begin() as conn:
        conn.execute(
            update(messages)
            .where(messages.c.id == delivery.id, messages.c.lease_owner == worker_id)
            .values(lease_owner=None, lease_until=None, due_at=due_at)
        )


def extend_leases(conn: Connection, worker_id: str, ids: list[int], until: float) -> None:
    if ids:
        conn.execute(
            update(messages)
            .where(messages.c.id.in_(ids), messages.c.lease_owner == worker_id)
            .values(lease_until=until)
        )


def hold(conn: Connection, execution_id: str, held: bool, now: float) -> None:
    values: dict[str, Any] = {"held": held}
    if not held:
        values["due_at"] = now
    conn.execute(update(messages).where(messages.c.execution_id == execution_id).values(**values))


def drop_execution(conn: Connection, execution_id: str) -> None:
    conn.execute(delete(messages).where(messages.c.execution_id == execution_id))


_PENDING = select(messages.c.id).where(messages.c.execution_id == bindparam("eid")).limit(1)


# A stage's RunTask messages that nobody holds: once it finished, leftovers (e.g. a judgment's hourly
# re-poll after the judgment itself woke it); a held one is dropped as stale by its handler.
_POLLS = and_(
    messages.c.execution_id == bindparam("eid"),
    messages.c.stage_id == bindparam("sid"),
    messages.c.kind == kind(RunTask),
    or_(messages.c.lease_until.is_(None), messages.c.lease_until < bindparam("now")),
)
_POLLS_UP_TO = and_(_POLLS, messages.c.payload["attempt"].as_integer() <= bindparam("attempt"))
_DROP_POLLS = {False: delete(messages).where(_POLLS), True: delete(messages).where(_POLLS_UP_TO)}
_ACK_RETURNING = {
    False: _ACK.returning(messages.c.id),
    True: delete(messages)
    .where(or_(_OURS, and_(messages.c.id != bindparam("mid"), _POLLS_UP_TO)))
    .returning(messages.c.id),
}


def drop_stage_polls(conn: Connection, execution_id: str, stage_id: str, now: float, up_to: int | None = None) -> None:
    """Delete a finished stage's leftover RunTask messages that nobody holds; ``up_to``: only those of
    that attempt and earlier ones."""
    params: dict[str, Any] = {"eid": execution_id, "sid": stage_id, "now": now, "attempt": up_to}
    hot.execute(conn, _DROP_POLLS[up_to is not None], params)


def pending_for(conn: Connection, execution_id: str) -> int:
    return len(conn.execute(_PENDING, {"eid": execution_id}).all())
