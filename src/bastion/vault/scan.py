"""The PAN scanner behind `bastion vault scan-pan`: looks for card numbers where none may be,
the API's database schema (events included) and the logs directory.

A finding is a number a card network could have issued (`looks_like_card_number`: known IIN,
its length, Luhn-valid), found the way the log redactor finds them (`card_numbers_in`: also
split by spaces or dashes, also beside other numbers) in text that is not a hex string or a
UUID (`card_numbers_outside_hex`). It is shown as BIN + last 4, never in full, and so is
anything else the scanner reports (a row id or a path is redacted too).

Limits, each reported in `PanScan.incomplete` when reached:
- FINDINGS_MAX findings per scan, then the scan stops;
- `rows_max` rows per table, counting only the rows PostgreSQL's prefilter lets through;
- `bytes_max` bytes of logs in all, read in pieces of LOG_PIECE_BYTES at most.
"""

import os
import re
import stat
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import asyncpg

from bastion.kernel.errors import ConfigurationError
from bastion.platform.redaction import PAN_LENGTH_MIN, card_numbers_in, redact_text
from bastion.vault.domain import looks_like_card_number, masked

FINDINGS_MAX = 1000
ROWS_MAX_DEFAULT = 1_000_000
LOG_BYTES_MAX_DEFAULT = 1 << 30
LOG_PIECE_BYTES = 64 * 1024
_CURSOR_PREFETCH = 500
_RUN_CHARS = "0123456789 -"
# Words that hold digits but no card number: UUIDs, whose digit groups would join across their
# dashes, and hex strings with a letter (digests, keys, nonces), in which a Luhn-valid run with a
# card network's prefix is chance: about 4 in 10,000 SHA-256 digests hold one. A card number in
# text is delimited; one glued to hex letters ("beef4242...") is not read as one. Words end at
# anything but an ASCII letter or digit, so `_`, quotes, spaces and dashes all delimit. Every
# match consumes whole words, so each starts where a word does (linear: no backtracking).
_WORD = re.compile(r"[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}(?![0-9A-Za-z])|[0-9A-Za-z]+")
_HEX_DIGITS = frozenset(string.hexdigits)

# Candidate columns: string types (text, varchar, char, name, domains over them), json, jsonb,
# bytea, and arrays of those. Plain tables and partitions only: a partitioned parent holds no
# rows of its own, and a view shows rows of tables scanned anyway.
_COLUMNS = """
SELECT c.relname AS table_name,
       format('%I.%I', n.nspname, c.relname) AS table_sql,
       row_security_active(c.oid) AS rows_hidden,
       EXISTS (
           SELECT 1 FROM pg_catalog.pg_attribute AS k WHERE k.attrelid = c.oid AND k.attname = 'id' AND NOT k.attisdropped
       ) AS has_id,
       a.attname AS column_name,
       quote_ident(a.attname) AS column_sql,
       t.typname = 'bytea' AS is_bytes
FROM pg_catalog.pg_class AS c
JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid
JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type AS e ON e.oid = t.typelem AND t.typcategory = 'A'
WHERE n.nspname = $1
  AND c.relkind = 'r'
  AND a.attnum > 0
  AND NOT a.attisdropped
  AND (t.typcategory = 'S' OR t.typname IN ('json', 'jsonb', 'bytea') OR e.typcategory = 'S' OR e.typname IN ('json', 'jsonb'))
ORDER BY c.relname, a.attnum
"""
# What a value needs to hold a card number at all: PAN_LENGTH_MIN digits in one run, with at
# most one space or dash between two digits (the runs `card_numbers_in` reads). Lossless, and
# PostgreSQL drops most rows before they cross the wire; Python still decides.
_PREFILTER = f"[0-9]([ -]?[0-9]){{{PAN_LENGTH_MIN - 1}}}"


@dataclass(frozen=True, slots=True)
class PanFinding:
    location: str  # "table customers column email row id=cus_...", "events column data row id=evt_..." or "log <path>:<line>"
    masked: str  # BIN + last 4 (`bastion.vault.domain.masked`)


@dataclass(frozen=True, slots=True)
class PanScan:
    findings: list[PanFinding]
    # What the scan did not cover: a limit reached, a table or file it could not read. Empty
    # when everything was scanned; a scan with no findings but something here is not clean.
    incomplete: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.findings and not self.incomplete


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    sql: str
    is_bytes: bool


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    sql: str
    rows_hidden: bool
    has_id: bool
    columns: list[_Column] = field(default_factory=list)


@dataclass(slots=True)
class _Findings:
    """Findings in order, once each, up to `maximum`."""

    maximum: int
    found: dict[PanFinding, None] = field(default_factory=dict)

    @property
    def full(self) -> bool:
        return len(self.found) >= self.maximum

    def add(self, text: str, location: str) -> None:
        for shown in dict.fromkeys(masked(number) for number in card_numbers_outside_hex(text)):
            if self.full:
                return
            # The location quotes a row id or a path: not trusted to be free of card numbers.
            self.found[PanFinding(location=redact_text(location), masked=shown)] = None

    def scan(self, incomplete: list[str]) -> PanScan:
        # Notes name tables and paths: redacted like locations.
        return PanScan(list(self.found), [redact_text(note) for note in incomplete])


def card_numbers_outside_hex(text: str) -> Iterator[str]:
    """Numbers a card network could have issued, in `text` less its UUIDs and hex words (each
    replaced by a letter, so that the digits on either side stay apart)."""
    return (number for number in card_numbers_in(_WORD.sub(_without_hex_word, text)) if looks_like_card_number(number))


def _without_hex_word(match: re.Match[str]) -> str:
    word = match.group(0)
    is_hex = "-" in word or (not word.isdigit() and _HEX_DIGITS.issuperset(word))  # a dash: the UUID alternative
    return "x" if is_hex else word


async def scan_database(
    connection: asyncpg.Connection, schema: str = "public", *, rows_max: int = ROWS_MAX_DEFAULT, findings_max: int = FINDINGS_MAX
) -> PanScan:
    """Every text-like column of every table in `schema`. Run it as the tables' owner: row-level
    security hides rows from other roles (reported in `incomplete`)."""
    tables: dict[str, _Table] = {}
    for row in await connection.fetch(_COLUMNS, schema):
        table = tables.get(row["table_name"]) or _Table(row["table_name"], row["table_sql"], row["rows_hidden"], row["has_id"])
        tables[table.name] = table
        table.columns.append(_Column(row["column_name"], row["column_sql"], row["is_bytes"]))
    findings = _Findings(findings_max)
    incomplete: list[str] = []
    for table in tables.values():
        if table.rows_hidden:
            incomplete.append(f"table {table.name}: row-level security hides rows from this role")
        # `events` is a surface of its own (the outbox and GET /v1/events), so it is named as one.
        place = "events" if table.name == "events" else f"table {table.name}"
        row_key = "id" if table.has_id else "ctid"
        rows = 0
        try:
            async with connection.transaction():  # a cursor needs one; a savepoint inside the caller's
                async for record in connection.cursor(_table_query(table), _PREFILTER, rows_max + 1, prefetch=_CURSOR_PREFETCH):
                    rows += 1
                    if rows > rows_max:
                        incomplete.append(f"table {table.name}: stopped after {rows_max} rows with {PAN_LENGTH_MIN}+ digits")
                        break
                    for index, column in enumerate(table.columns, start=1):
                        value = record[index]
                        if value is not None:
                            text = value.decode("utf-8", errors="replace") if column.is_bytes else value
                            findings.add(text, f"{place} column {column.name} row {row_key}={record[0]}")
                    if findings.full:
                        incomplete.append(f"stopped at {findings_max} findings, in table {table.name}")
                        return findings.scan(incomplete)
        except asyncpg.InsufficientPrivilegeError:
            incomplete.append(f"table {table.name}: not readable by this role")
    return findings.scan(incomplete)


def _table_query(table: _Table) -> str:
    """Names come quoted from the catalogue (`format('%I')`, `quote_ident`); values are bind parameters."""
    key = '"id"::text' if table.has_id else "ctid::text"
    # bytea is fetched raw and decoded in Python (an escaped form would glue octal escapes to
    # digits); its escaped form serves the prefilter, since ASCII digits stay as they are in it.
    fetched = ", ".join(column.sql if column.is_bytes else f"{column.sql}::text" for column in table.columns)
    prefilter = " OR ".join(
        f"encode({column.sql}, 'escape') ~ $1" if column.is_bytes else f"{column.sql}::text ~ $1" for column in table.columns
    )
    return f"SELECT {key}, {fetched} FROM {table.sql} WHERE {prefilter} LIMIT $2"


def scan_logs(directory: Path, *, bytes_max: int = LOG_BYTES_MAX_DEFAULT, findings_max: int = FINDINGS_MAX) -> PanScan:
    """Every regular file under `directory`, recursively, as UTF-8 (undecodable bytes replaced),
    in name order; symbolic links are not followed, since they could lead out of the logs."""
    if not directory.is_dir():
        raise ConfigurationError(f"no logs directory at {directory}")
    findings = _Findings(findings_max)
    incomplete: list[str] = []
    bytes_left = bytes_max
    for path in _regular_files(directory, incomplete):
        try:
            with path.open("rb") as file:
                for line_number, text in _pieces(file, bytes_left):
                    findings.add(text, f"log {path}:{line_number}")
                    if findings.full:
                        incomplete.append(f"stopped at {findings_max} findings, in log {path}")
                        return findings.scan(incomplete)
                bytes_left -= file.tell()
                if bytes_left <= 0 and file.read(1):
                    incomplete.append(f"logs: stopped after {bytes_max} bytes, in {path}")
                    break
        except OSError as error:
            incomplete.append(f"log {path}: not readable ({error.strerror})")
    return findings.scan(incomplete)


def _regular_files(directory: Path, incomplete: list[str]) -> Iterator[Path]:
    def unreadable(error: OSError) -> None:
        incomplete.append(f"logs directory {error.filename}: not readable ({error.strerror})")

    for root, subdirectories, names in os.walk(directory, onerror=unreadable):
        subdirectories.sort()
        for name in sorted(names):
            path = Path(root) / name
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:
                continue  # rotated away since the directory was listed
            if stat.S_ISREG(mode):  # not a link, a socket or a FIFO (that would block)
                yield path


def _pieces(file: BinaryIO, bytes_max: int) -> Iterator[tuple[int, str]]:
    """The file's text as (line number, piece), reading at most `bytes_max` bytes: whole lines,
    and a line longer than LOG_PIECE_BYTES in several pieces, cut before a trailing run of
    digits, spaces and dashes so that no number is split between two pieces."""
    line_number = 1
    carried = ""
    while (budget := bytes_max - file.tell()) > 0:
        raw = file.readline(min(LOG_PIECE_BYTES, budget))
        if not raw:
            break
        text = carried + raw.decode("utf-8", errors="replace")
        if raw.endswith(b"\n"):
            yield line_number, text
            line_number += 1
            carried = ""
            continue
        cut = len(text.rstrip(_RUN_CHARS))
        if len(text) - cut >= LOG_PIECE_BYTES:
            cut = len(text)  # a run this long is no card number's surroundings: keep the carry bounded
        yield line_number, text[:cut]
        carried = text[cut:]
    if carried:
        yield line_number, carried
