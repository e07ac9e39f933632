"""Statements each connection parses and plans once (``PREPARE``), then only executes.

The worker's hot statements (receive, claim, success + delete) run thousands of times a second;
planning them each time cost PostgreSQL as much CPU as running them. A :class:`Prepared` keeps its
SQL with named parameters, as the rest of the adapters write it, and turns them into ``$n``
positions for ``PREPARE``. Each pooled connection remembers what it has prepared
(:class:`PreparingConnection`); a new connection (after a server restart, say) prepares again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from psycopg2.extensions import connection as Connection
from psycopg2.extensions import cursor as Cursor

_NAMED = re.compile(r"%\((\w+)\)s")
#: A statement's arguments: by position (``EXECUTE``) or by name (sent whole).
_Arguments = Sequence[Any] | Mapping[str, Any]

#: Sent in the round trip of a pinned statement's ``EXECUTE``: a connection plans a prepared statement
#: once and keeps the plan, so a plan made while a table was nearly empty (a hash join, a sequential
#: scan) would read the whole table at every call once it has grown. Off for the transaction's rest.
PLAN_BY_INDEX = (
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off;"
    " SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off;\n"
)


class PreparingConnection(Connection):
    """A psycopg2 connection that remembers the statements it has prepared.

    With :attr:`prepares` off (behind a pooler in transaction mode) statements are sent whole.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: set[str] = set()
        self.prepares = True


@dataclass(frozen=True)
class Prepared:
    """A statement prepared once per connection.

    Args:
        name: The prepared statement's name (unique among the adapters).
        sql: The statement, parameters written ``%(name)s``.
        types: The PostgreSQL type of each parameter, by name, in the order of
            first appearance in ``sql``.
        by_index: Its rows are found through indexes whatever the table's size when the
            connection planned it (:data:`PLAN_BY_INDEX`); for statements whose cost must not
            grow with a table (a queue's backlog, the job history).
    """

    name: str
    sql: str
    types: Mapping[str, str]
    by_index: bool = False
    _order: tuple[str, ...] = field(init=False, repr=False)
    _prepare: str = field(init=False, repr=False)
    _execute: str = field(init=False, repr=False)
    _whole: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        order = tuple(dict.fromkeys(_NAMED.findall(self.sql)))
        if set(order) != set(self.types):
            raise ValueError(f"{self.name}: parameters {order} but types for {tuple(self.types)}")
        positions = {param: n for n, param in enumerate(order, start=1)}
        body = _NAMED.sub(lambda m: f"${positions[m[1]]}", self.sql)
        types = ", ".join(self.types[param] for param in order)
        object.__setattr__(self, "_order", order)
        object.__setattr__(self, "_prepare", f"PREPARE {self.name} ({types}) AS {body}")
        placeholders = ", ".join(["%s"] * len(order))
        object.__setattr__(self, "_execute", f"EXECUTE {self.name} ({placeholders})")
        # Sent whole, each parameter carries its declared type as the prepared statement does.
        object.__setattr__(self, "_whole", _NAMED.sub(lambda m: f"{m[0]}::{self.types[m[1]]}", self.sql))

    def execute(self, cur: Cursor, params: Mapping[str, Any], *, prefix: str = "") -> None:
        """Run the statement on ``cur``, preparing it first if its connection has not.

        Args:
            cur: A cursor; on a connection that is not a :class:`PreparingConnection` (an
                application's own, enqueueing in its transaction) the statement goes whole.
            params: A value for each parameter, by name.
            prefix: Statements sent before it in the same round trip (e.g. ``SET LOCAL``).
        """
        text, args = self.sendable(cur, params)
        cur.execute(f"{prefix}{text}", args)

    def sendable(self, cur: Cursor, params: Mapping[str, Any]) -> tuple[str, _Arguments]:
        """The text and arguments that run the statement on ``cur``, preparing it there first if needed.

        Returns:
            ``EXECUTE`` with positional arguments where the connection prepares statements (pinned to
            the indexes if :attr:`by_index`), else the whole statement with ``params`` by name.
        """
        conn = cur.connection
        if not isinstance(conn, PreparingConnection) or not conn.prepares:
            return self._whole, params
        if self.name not in conn.prepared:
            cur.execute(self._prepare)
            conn.prepared.add(self.name)  # PREPARE is not undone by a rollback
        pin = PLAN_BY_INDEX if self.by_index else ""  # sent whole, it is planned afresh: no pin needed
        return f"{pin}{self._execute}", [params[param] for param in self._order]


def execute_in_one_message(cur: Cursor, *statements: tuple[Prepared, Mapping[str, Any]]) -> None:
    """Send several statements in one round trip; ``cur`` then holds the rows of the last one.

    On a connection in autocommit mode (``PostgresPool.connection(one_message=True)``) PostgreSQL runs
    the statements of one message as one transaction: all or nothing, committed (durably, with
    ``synchronous_commit`` on) before the round trip ends, without a ``BEGIN`` or ``COMMIT`` of its own.

    Raises:
        ValueError: Two statements sent whole name the same parameter.
    """
    texts: list[str] = []
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for statement, params in statements:
        text, args = statement.sendable(cur, params)
        texts.append(text)
        if isinstance(args, Mapping):
            if shared := named.keys() & args.keys():
                raise ValueError(f"{statement.name}: parameters {sorted(shared)} are already taken")
            named.update(args)
        else:
            positional.extend(args)
    cur.execute(";\n".join(texts), named or positional)
