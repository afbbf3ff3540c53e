"""The labelled history fraud models learn from (docs/risk-ml.md, Data): files in the Fraud
Detection Handbook's format imported whole or not at all, and Bastion's own payments, each with
the customer and the terminal its features are counted for.

An import streams the file into a temporary table with PostgreSQL's CSV COPY (parsed in C, so a
few seconds for the Handbook's 1.8 million rows), checks every row there, names the bad lines,
and only then copies the rows into the history, all in one transaction."""

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import asyncpg

from bastion.kernel.ids import new_id
from bastion.platform.db import Connection, Database, Tenant
from bastion.risk import learning_repository as repository
from bastion.risk.simulation import HEADER

# The Handbook's columns, as the simulator writes them; the scenario may be absent.
OPTIONAL_COLUMNS = ("TX_FRAUD_SCENARIO",)
REQUIRED_COLUMNS = tuple(name for name in HEADER if name not in OPTIONAL_COLUMNS)
IMPORT_BYTES_MAX = 4 << 30
BAD_LINES_SHOWN = 20
_CHUNK_BYTES = 1 << 20
_HEADER_BYTES_MAX = 4_096


_REFUSED_BY_COPY = (asyncpg.DataError, asyncpg.BadCopyFileFormatError, asyncpg.CharacterNotInRepertoireError)
_REFUSED_BY_CASTS = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class HistoryInvalid(ValueError):
    """A history file refused, naming its bad lines or columns; nothing of it was loaded."""


@dataclass(frozen=True, slots=True)
class Imported:
    id: str
    rows: int
    frauds: int
    first: datetime
    last: datetime


async def import_history(
    database: Database, path: Path, tenant: Tenant, *, on_progress: Callable[[int], None], now: datetime
) -> Imported:
    """The file's rows, for `tenant`'s history; `on_progress` hears of each chunk's bytes sent."""
    if path.stat().st_size > IMPORT_BYTES_MAX:  # noqa: ASYNC240  (one stat call, at the start of a CLI command)
        raise HistoryInvalid(f"{path}: larger than {IMPORT_BYTES_MAX} bytes")
    columns = _columns(path)
    digest = hashlib.sha256()

    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                digest.update(chunk)
                on_progress(len(chunk))
                yield chunk

    async with database.transaction() as connection:
        await repository.create_import_staging(connection)
        try:
            await repository.copy_import_staging(connection, columns, chunks())
        except _REFUSED_BY_COPY as error:
            raise HistoryInvalid(f"{path}: nothing imported: {_copy_failure(error)}") from None
        sha256 = digest.hexdigest()
        earlier = await repository.import_of_file(connection, tenant, sha256)
        if earlier is not None:
            raise HistoryInvalid(f"{path}: this file was imported already, as {earlier}")
        import_id = new_id("rhi")
        try:
            async with connection.transaction():
                summary = await repository.insert_imported_history(connection, tenant, import_id)
        except _REFUSED_BY_CASTS as error:
            raise HistoryInvalid(f"{path}: nothing imported: {await _bad_lines(connection, error)}") from None
        if summary["rows"] == 0:
            raise HistoryInvalid(f"{path}: no rows after the header")
        try:
            await repository.insert_import(
                connection,
                tenant,
                {
                    "id": import_id,
                    "file_sha256": sha256,
                    "file_name": path.name,
                    "rows": summary["rows"],
                    "frauds": summary["frauds"],
                    "created_at": now,
                },
            )
        except asyncpg.ForeignKeyViolationError:
            raise HistoryInvalid(f"no such merchant: {tenant.merchant_id}") from None
    return Imported(import_id, summary["rows"], summary["frauds"], summary["first"], summary["last"])


def _columns(path: Path) -> list[str]:
    """The header's columns, each known and none missing, in the file's order."""
    with path.open("rb") as stream:
        header = stream.readline(_HEADER_BYTES_MAX)
    try:
        names = [name.strip().strip('"') for name in header.decode("utf-8-sig").rstrip("\r\n").split(",")]
    except UnicodeDecodeError:
        raise HistoryInvalid(f"{path}: line 1: the header is not UTF-8 text") from None
    unknown = [name for name in names if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if unknown:
        raise HistoryInvalid(f"{path}: line 1: unknown column {unknown[0]!r}; expected {', '.join(REQUIRED_COLUMNS)}")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        raise HistoryInvalid(f"{path}: line 1: missing column {missing[0]}")
    if len(set(names)) != len(names):
        raise HistoryInvalid(f"{path}: line 1: a column is named twice")
    return names


def _copy_failure(error: asyncpg.PostgresError) -> str:
    """PostgreSQL's reason and line number, not the line itself (it could hold anything)."""
    where = getattr(error, "context", None) or ""  # asyncpg's name for the CONTEXT ("where") field
    line = next((part.split(":")[0] for part in where.split("line ")[1:2]), None)
    reason = str(error).split("\n")[0]
    return f"line {line}: {reason}" if line else reason


async def _bad_lines(connection: Connection, error: asyncpg.PostgresError) -> str:
    """Where a file the import refused went wrong: its first bad lines, by the rules the casts
    apply and on days that do not exist (2018-02-30); else PostgreSQL's own reason."""
    bad = {row["line"]: row["column"] for row in await repository.bad_import_lines(connection, BAD_LINES_SHOWN)}
    wrong = [day for day in await repository.import_days(connection) if day is not None and not _is_day(day)]
    for row in await repository.import_lines_on_days(connection, wrong, BAD_LINES_SHOWN) if wrong else []:
        bad.setdefault(row["line"], row["column"])
    if not bad:
        return str(error).split("\n")[0]
    return "; ".join(f"line {line}: bad {bad[line]}" for line in sorted(bad)[:BAD_LINES_SHOWN])


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
