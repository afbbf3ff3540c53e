"""Keyset pagination on prefixed, time-sortable ids: newest first, like Stripe's lists."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id
from bastion.platform.db import AnyRow, Connection

LIMIT_DEFAULT = 10
LIMIT_MAX = 100


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = LIMIT_DEFAULT
    starting_after: str | None = None
    ending_before: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[AnyRow]
    has_more: bool


async def fetch_page(connection: Connection, query: str, args: Sequence[object], request: PageRequest) -> Page:
    """One page of `query`, a repository's constant `SELECT ... FROM t WHERE ...` over a
    table with an `id` column, whose parameters are `args` ($1..$n); the cursor and the
    limit become $n+1 and $n+2."""
    cursor, limit = f"${len(args) + 1}", f"${len(args) + 2}"
    # One row beyond the limit tells whether there is more in the direction of travel.
    if request.ending_before is not None:
        sql = f"{query} AND id > {cursor} ORDER BY id ASC LIMIT {limit}"
        rows = list(await connection.fetch(sql, *args, request.ending_before, request.limit + 1))
        return Page(rows=list(reversed(rows[: request.limit])), has_more=len(rows) > request.limit)
    if request.starting_after is not None:
        sql = f"{query} AND id < {cursor} ORDER BY id DESC LIMIT {limit}"
        rows = list(await connection.fetch(sql, *args, request.starting_after, request.limit + 1))
    else:
        sql = f"{query} ORDER BY id DESC LIMIT {cursor}"
        rows = list(await connection.fetch(sql, *args, request.limit + 1))
    return Page(rows=rows[: request.limit], has_more=len(rows) > request.limit)


async def check_cursors(request: PageRequest, *, prefix: str, noun: str, exists: Callable[[str], Awaitable[bool]]) -> None:
    """A cursor must be the id of an object of the listed collection, else `resource_missing` naming it."""
    for param, cursor in (("starting_after", request.starting_after), ("ending_before", request.ending_before)):
        if cursor is not None and not (is_id(cursor, prefix) and await exists(cursor)):
            raise ResourceMissing(f"No such {noun}: '{cursor}'", param=param)
