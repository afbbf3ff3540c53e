"""Exchange rates to US dollars, for `:amount_in_usd:`: loaded from a CSV file by `bastion risk
rates load`, all lines or none (docs/risk.md, Exchange rates)."""

import csv
import io
from datetime import datetime
from decimal import Decimal, InvalidOperation

from bastion.kernel.money import CURRENCIES
from bastion.platform.db import Database
from bastion.risk import repository

RATES_MAX = 500
_RATE_MAX = Decimal(10) ** 9
_HEADER = ["currency", "usd_per_unit"]


class RatesInvalid(ValueError):
    """A rates file refused, naming its first bad line."""


def parse_rates(text: str) -> list[tuple[str, Decimal]]:
    """`currency,usd_per_unit` lines under that header: what one unit of each currency is worth
    in US dollars (`EUR,1.08`)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or [cell.strip().lower() for cell in rows[0]] != _HEADER:
        raise RatesInvalid("line 1: the header must be currency,usd_per_unit")
    if len(rows) - 1 > RATES_MAX:
        raise RatesInvalid(f"at most {RATES_MAX} rates")
    rates: dict[str, Decimal] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(_HEADER):
            raise RatesInvalid(f"line {number}: two fields are expected, currency and usd_per_unit")
        currency, text_rate = row[0].strip().upper(), row[1].strip()
        if currency not in CURRENCIES:
            raise RatesInvalid(f"line {number}: {currency!r} is not an ISO 4217 currency")
        if currency in rates:
            raise RatesInvalid(f"line {number}: {currency} is given twice")
        try:
            rate = Decimal(text_rate)
        except InvalidOperation:
            raise RatesInvalid(f"line {number}: {text_rate!r} is not a number") from None
        if not rate.is_finite() or rate <= 0 or rate >= _RATE_MAX:
            raise RatesInvalid(f"line {number}: the rate must be above 0 and below {_RATE_MAX}")
        rates[currency] = rate
    return sorted(rates.items())


async def load_rates(database: Database, rates: list[tuple[str, Decimal]], as_of: datetime) -> int:
    """Store the rates in one transaction (a currency not in the file keeps its rate); how many."""
    async with database.transaction() as connection:
        await repository.upsert_rates(connection, rates, as_of)
    return len(rates)
