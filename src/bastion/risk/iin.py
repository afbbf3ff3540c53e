"""Issuers' card number ranges and their countries, for `:card_country:`: loaded from a CSV file
by `bastion risk iin load`, replacing the table whole (docs/risk.md, Card countries)."""

import csv
import io

from bastion.platform.db import Database, UnitOfWork
from bastion.risk import repository

IIN_RANGES_MAX = 500_000
_DIGITS = 8
_HEADER = ["iin_start", "iin_end", "country"]


class IinInvalid(ValueError):
    """An IIN file refused, naming its first bad line."""


def iin_number(prefix: str | None, *, fill: str = "0") -> int | None:
    """A card number prefix (6 to 8 digits) as an 8-digit number: 424242 is 42424200 (with
    `fill` 9, the last number it covers: 42424299)."""
    if prefix is None or not (prefix.isascii() and prefix.isdigit()) or not 1 <= len(prefix) <= _DIGITS:
        return None
    return int(prefix.ljust(_DIGITS, fill))


def parse_iin_ranges(text: str) -> list[tuple[int, int, str]]:
    """`iin_start,iin_end,country` lines under that header: `400000,499999,US` (prefixes of 1 to
    8 digits; the most specific range that holds a BIN wins)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip().lower() for cell in rows[0]] != _HEADER:
        raise IinInvalid("line 1: the header must be iin_start,iin_end,country")
    if len(rows) - 1 > IIN_RANGES_MAX:
        raise IinInvalid(f"at most {IIN_RANGES_MAX} ranges")
    ranges: dict[tuple[int, int], str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(_HEADER):
            raise IinInvalid(f"line {number}: three fields are expected, iin_start, iin_end and country")
        start, end, country = (cell.strip() for cell in row)
        low, high = iin_number(start), iin_number(end, fill="9")
        if low is None or high is None or len(start) != len(end):
            raise IinInvalid(f"line {number}: iin_start and iin_end are prefixes of 1 to 8 digits, of one length")
        if low > high:
            raise IinInvalid(f"line {number}: the range ends before it starts")
        if not (len(country) == 2 and country.isascii() and country.isalpha()):
            raise IinInvalid(f"line {number}: {country!r} is not a two-letter country code")
        if (low, high) in ranges:
            raise IinInvalid(f"line {number}: the range {start}-{end} is given twice")
        ranges[(low, high)] = country.upper()
    return [(low, high, country) for (low, high), country in sorted(ranges.items())]


async def load_iin_ranges(database: Database, ranges: list[tuple[int, int, str]]) -> int:
    """Replace the table with `ranges`, in one transaction; how many."""
    async with database.transaction() as connection:
        await repository.replace_iin_ranges(connection, ranges)
    return len(ranges)


async def card_country(uow: UnitOfWork, card_bin: str | None) -> str | None:
    """The issuing country of a card by its BIN, as `:card_country:` reads it (routing's
    conditions too); None with no BIN or no loaded range holding it."""
    iin = iin_number(card_bin)
    return None if iin is None else await repository.card_country(uow.connection, iin)
