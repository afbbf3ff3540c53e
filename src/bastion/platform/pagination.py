"""Keyset pagination on prefixed, time-sortable ids: newest first, like Stripe's lists."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, Select
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.kernel.errors import InvalidRequest
from bastion.kernel.ids import is_id
from bastion.platform.db import AnyRow

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


async def fetch_page(connection: AsyncConnection, query: Select[Any], id_column: Column[str], request: PageRequest) -> Page:
    # One row beyond the limit tells whether there is more in the direction of travel.
    if request.ending_before is not None:
        inner = query.where(id_column > request.ending_before).order_by(id_column.asc()).limit(request.limit + 1)
        rows = list((await connection.execute(inner)).all())
        has_more = len(rows) > request.limit
        return Page(rows=list(reversed(rows[: request.limit])), has_more=has_more)
    if request.starting_after is not None:
        query = query.where(id_column < request.starting_after)
    rows = list((await connection.execute(query.order_by(id_column.desc()).limit(request.limit + 1))).all())
    return Page(rows=rows[: request.limit], has_more=len(rows) > request.limit)


async def check_cursors(request: PageRequest, *, prefix: str, noun: str, exists: Callable[[str], Awaitable[bool]]) -> None:
    """A cursor must be the id of an object of the listed collection, else 400 naming it."""
    for param, cursor in (("starting_after", request.starting_after), ("ending_before", request.ending_before)):
        if cursor is not None and not (is_id(cursor, prefix) and await exists(cursor)):
            raise InvalidRequest(f"No such {noun}: '{cursor}'", param=param)
