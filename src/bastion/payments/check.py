"""`bastion payments check`: what only payments knows about its books, over every merchant and
mode, in one snapshot. Captured <= authorized and refunded <= captured are table constraints
and the ledger's hold rules; this proves that the objects agree with each other and that the
ledger holds exactly what they say, then runs the ledger's own check (every entry balances,
every currency sums to zero). The first disagreement is named; nothing is written."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from bastion import ledger
from bastion.payments import repository
from bastion.platform.db import AnyRow, Connection


@dataclass(frozen=True, slots=True)
class Disagreement:
    subject: str  # the object or the books that disagree: ch_..., pi_..., mer_... EUR test
    message: str


@dataclass(frozen=True, slots=True)
class PaymentsSummary:
    intents: int
    charges: int
    refunds: int
    disputes: int
    settlements: int
    books: int
    journal_entries: int


_PREFIX = "payments."


def _expected(row: AnyRow) -> dict[str, tuple[int, int]]:
    """What each of a merchant's accounts in a currency must hold, (posted, pending) in its
    normal direction, by what its intents, charges, refunds, disputes and settlements say: open
    authorizations are holds on both sides, captures net of fees are pending funds until a
    settlement releases them to the available ones, refunds, lost disputes and dispute fees come
    out of the available ones, open disputes hold them, and what the acquirer paid is no longer
    owed."""
    captured, fees, refunded, authorized = row["captured"], row["fees"], row["refunded"], row["authorized"]
    lost, open_disputes, dispute_fees = row["disputes_lost"], row["disputes_open"], row["dispute_fees"]
    paid, released = row["settled_net"], row["released"]
    return {
        "acquirer_receivable": (captured - refunded - lost - paid, authorized - open_disputes),
        "balance_pending": (captured - fees - released, authorized),
        "balance_available": (released - refunded - lost - dispute_fees, -open_disputes),
    }


async def check_payments(connection: Connection, moment: datetime) -> Disagreement | PaymentsSummary:
    charge = await repository.charge_refunded_elsewise(connection)
    if charge is not None:
        return Disagreement(
            charge["id"], f"amount_refunded is {charge['amount_refunded']}, its refunds add up to {charge['refunds']}"
        )
    intent = await repository.intent_received_elsewise(connection)
    if intent is not None:
        return Disagreement(
            intent["id"], f"amount_received is {intent['amount_received']}, its charges captured {intent['captured']}"
        )
    books = await repository.expected_books(connection)
    disagreement = await _books_disagree(connection, books, moment)
    if disagreement is not None:
        return disagreement
    journal = await ledger.check_journal(connection)
    if isinstance(journal, ledger.Violation):
        return Disagreement(journal.entry or journal.account or "the journal", journal.message)
    counts = await repository.payment_counts(connection)
    return PaymentsSummary(
        counts["intents"],
        counts["charges"],
        counts["refunds"],
        counts["disputes"],
        counts["settlements"],
        len(books),
        journal.entries,
    )


async def _books_disagree(connection: Connection, books: list[AnyRow], moment: datetime) -> Disagreement | None:
    """The first account whose balance is not what the payments say, merchants' then the
    platform's; None if every one agrees."""
    accounts = {
        (row["merchant_id"], row["livemode"], row["code"]): row["id"]
        for row in await ledger.every_account_by_code_prefix(connection, _PREFIX)
    }
    fees: dict[tuple[bool, str], int] = defaultdict(int)
    cash: dict[tuple[bool, str], int] = defaultdict(int)
    for row in books:
        fees[row["livemode"], row["currency"]] += row["fees"] + row["dispute_fees"]
        cash[row["livemode"], row["currency"]] += row["settled_net"]
        subject = f"{row['merchant_id']} {row['currency']} {'live' if row['livemode'] else 'test'}"
        moved = {"balance_pending": row["moved_pending"], "balance_available": row["moved_available"]}
        for name, expected in _expected(row).items():
            account = accounts.get((row["merchant_id"], row["livemode"], f"{_PREFIX}{name}.{row['currency']}"))
            held = await _held(connection, account, moment)
            if held != expected:
                return Disagreement(subject, f"{name} holds (posted, pending) {held}, the payments say {expected}")
            if name in moved and held[0] != moved[name]:
                return Disagreement(subject, f"{name} holds {held[0]}, its balance transactions add up to {moved[name]}")
    for name, totals in (("fee_revenue", fees), ("settlement_cash", cash)):
        for (livemode, currency), total in sorted(totals.items()):
            account = accounts.get((ledger.PLATFORM_MERCHANT_ID, livemode, f"{_PREFIX}{name}.{currency}"))
            held = await _held(connection, account, moment)
            if held != (total, 0):
                mode = "live" if livemode else "test"
                return Disagreement(f"{name} {currency} {mode}", f"holds {held[0]}, the payments say {total}")
    return None


async def _held(connection: Connection, account_id: str | None, moment: datetime) -> tuple[int, int]:
    """An account's (posted, pending) balance in its normal direction; (0, 0) where there is none yet."""
    if account_id is None:
        return (0, 0)
    balance = await ledger.balance_any_tenant(connection, account_id, as_of=None, moment=moment)
    return (balance["posted"], balance["pending"])
