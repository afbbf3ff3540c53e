"""The acquirer's settlement: what it owes each merchant, per currency, paid out in one
settlement and told to Bastion (`settlement.paid`), with a report file per day for
reconciliation. A settlement takes every capture, refund and lost dispute not settled yet:
captures count for the merchant, refunds and lost disputes against."""

import csv
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from bastion.acquirer import repository
from bastion.acquirer.service import Acquirer, notify
from bastion.kernel.ids import new_id
from bastion.platform.db import AnyRow, Connection

# Items in one settlement at most; more wait for the next.
ITEMS_MAX = 1_000
_REPORT_COLUMNS = ("settlement", "merchant", "currency", "type", "reference", "acquirer_id", "amount")


@dataclass(frozen=True, slots=True)
class Settled:
    id: str
    merchant: str
    currency: str
    items: int
    net: int


async def settle(acquirer: Acquirer) -> list[Settled]:
    """Settle every merchant's unsettled items now, one settlement per merchant and currency;
    then rewrite the day's report."""
    async with acquirer.database.transaction() as connection:
        moment = acquirer.database.clock.now()
        items = await repository.unsettled_items(connection, ITEMS_MAX)
        groups: dict[tuple[str, str], list[AnyRow]] = {}
        for item in items:
            groups.setdefault((item["merchant"], item["currency"]), []).append(item)
        settled = [
            await _settle(connection, merchant, currency, lines, moment) for (merchant, currency), lines in sorted(groups.items())
        ]
        report = await repository.settlement_report(connection, moment.date())
    write_report(acquirer.report_dir, moment.date(), report)
    return settled


async def _settle(connection: Connection, merchant: str, currency: str, items: list[AnyRow], moment: datetime) -> Settled:
    settlement_id = new_id("acqs")
    lines = [{"type": item["kind"], "reference": item["reference"], "id": item["id"], "amount": item["amount"]} for item in items]
    net = sum(line["amount"] if line["type"] == "capture" else -line["amount"] for line in lines)
    await repository.insert_settlement(connection, settlement_id, merchant, currency, net=net, items=items, moment=moment)
    data = {
        "id": settlement_id,
        "object": "settlement",
        "merchant": merchant,
        "currency": currency,
        "settled_on": moment.date().isoformat(),
        "net": net,
        "lines": lines,
        "created": int(moment.timestamp()),
    }
    await notify(connection, "settlement.paid", merchant, data, moment)
    return Settled(settlement_id, merchant, currency, len(lines), net)


def report_path(report_dir: Path, day: date) -> Path:
    return report_dir / f"settlement-{day.isoformat()}.csv"


def write_report(report_dir: Path, day: date, rows: list[AnyRow]) -> Path:
    """The day's report, every settlement of it, line by line; written whole, then renamed into place."""
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_path(report_dir, day)
    partial = path.with_suffix(".partial")
    with partial.open("w", newline="", encoding="utf-8") as report:
        writer = csv.writer(report)
        writer.writerow(_REPORT_COLUMNS)
        for row in rows:
            writer.writerow([row[column] for column in _REPORT_COLUMNS])
        report.flush()
        os.fsync(report.fileno())
    partial.replace(path)
    return path
