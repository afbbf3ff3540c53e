"""What payments post in the ledger, through its facade and in the caller's unit of work
(docs/payments.md, Money in the ledger): an authorization is a hold, a capture posts it (the
ledger releases the rest) and the fee, a cancel voids it. Each posting that moves the merchant's
balance writes its balance transaction beside it."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from bastion import ledger
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.money import Money
from bastion.payments import repository
from bastion.payments.resources import Balance, BalanceAmount, BalanceTransaction, BalanceTransactionList
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors

# An authorization not captured within this window is voided (and the intent canceled); the
# ledger's hold outlives it by a day, so that the job that voids it, not the hold's own expiry,
# decides.
AUTHORIZATION_WINDOW = timedelta(days=7)
_HOLD_TIMEOUT_S = int((AUTHORIZATION_WINDOW + timedelta(days=1)).total_seconds())
# Every payment of a merchant posts to its receivable and pending balance, and every payment of
# every merchant to the platform's fee revenue: balance rows enough that they do not queue.
_MERCHANT_STRIPES = 4
_PLATFORM_STRIPES = 16


@dataclass(frozen=True, slots=True)
class _Accounts:
    receivable: str
    pending: str
    available: str
    fee_revenue: str


def _code(name: str, currency: str) -> str:
    """The code of payments' account `name` in `currency`: `payments.balance_pending.EUR`."""
    return f"payments.{name}.{currency}"


async def _accounts(uow: UnitOfWork, currency: str) -> _Accounts:
    def merchant(name: str, type_: ledger.AccountType) -> ledger.AccountDraft:
        return ledger.AccountDraft(currency, type_, _code(name, currency), name=name, stripes=_MERCHANT_STRIPES)

    revenue = "fee_revenue"
    fee_revenue = ledger.AccountDraft(
        currency, ledger.AccountType.REVENUE, _code(revenue, currency), name=revenue, stripes=_PLATFORM_STRIPES
    )
    receivable, pending, available = await ledger.ensure_accounts(
        uow,
        [
            merchant("acquirer_receivable", ledger.AccountType.ASSET),
            merchant("balance_pending", ledger.AccountType.LIABILITY),
            merchant("balance_available", ledger.AccountType.LIABILITY),
        ],
    )
    return _Accounts(
        receivable=receivable,
        pending=pending,
        available=available,
        fee_revenue=await ledger.ensure_account(uow, fee_revenue, platform=True),
    )


def _transfer(debit: str, credit: str, amount: Money) -> tuple[ledger.PostingDraft, ...]:
    return (
        ledger.PostingDraft(debit, "debit", amount.amount_minor, amount.currency),
        ledger.PostingDraft(credit, "credit", amount.amount_minor, amount.currency),
    )


async def hold_authorization(uow: UnitOfWork, charge_id: str, authorized: Money) -> str:
    """The acquirer owes what it authorized, set aside in the merchant's pending balance; the
    hold's entry id."""
    accounts = await _accounts(uow, authorized.currency)
    entry = await ledger.post_entry(
        uow,
        ledger.EntryDraft(
            postings=_transfer(accounts.receivable, accounts.pending, authorized),
            reference=f"{charge_id}:authorization",
            description="authorization",
            pending=True,
            timeout_s=_HOLD_TIMEOUT_S,
        ),
        new_references=True,
    )
    return entry["id"]


def _fee_entry(accounts: _Accounts, charge_id: str, fee: Money) -> ledger.EntryDraft | None:
    if fee.amount_minor == 0:
        return None
    return ledger.EntryDraft(
        postings=_transfer(accounts.pending, accounts.fee_revenue, fee), reference=f"{charge_id}:fee", description="fee"
    )


# Every reference posted here is new (`new_references`): a dispute's or a settlement's id is made
# in the transaction that posts it, and a charge's or a refund's entries are posted by the one
# command that holds its row and finds it in the status before them.
# Each finish writes its entries in one call of the ledger, which locks every balance they touch
# at once and in one order: two captures locking in two rounds could each hold what the other waits for.


def next_settlement(moment: datetime) -> datetime:
    """When a capture made at `moment` is expected to be available: the sandbox acquirer settles
    each day's captures after midnight UTC."""
    return (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


async def _moved(uow: UnitOfWork, kind: str, source: str, amount: Money, fee: int = 0) -> None:
    """The balance transaction of a movement of the merchant's balance: a charge's waits in the
    pending balance until it is settled; the others move the available balance at once."""
    pending = kind == "charge"
    await repository.insert_balance_transaction(
        uow.connection,
        uow.tenant,
        {
            "id": new_id("txn"),
            "type": kind,
            "source": source,
            "amount": amount.amount_minor,
            "fee": fee,
            "currency": amount.currency,
            "status": "pending" if pending else "available",
            "available_on": next_settlement(uow.now()) if pending else uow.now(),
            "created_at": uow.now(),
        },
    )


async def capture_authorization(uow: UnitOfWork, charge_id: str, hold_id: str, captured: Money, fee: Money) -> None:
    """The hold posted for what was captured (the ledger releases the rest), with the fee."""
    fee_entry = _fee_entry(await _accounts(uow, captured.currency), charge_id, fee)
    await ledger.post_pending(uow, hold_id, captured.amount_minor, platform=True, with_entry=fee_entry)
    await _moved(uow, "charge", charge_id, captured, fee.amount_minor)


async def capture_at_once(uow: UnitOfWork, charge_id: str, captured: Money, fee: Money) -> None:
    """An authorization captured in the same call (capture_method automatic): no hold."""
    accounts = await _accounts(uow, captured.currency)
    capture = ledger.EntryDraft(
        postings=_transfer(accounts.receivable, accounts.pending, captured),
        reference=f"{charge_id}:capture",
        description="capture",
    )
    fee_entry = _fee_entry(accounts, charge_id, fee)
    await ledger.post_entries(uow, [capture] if fee_entry is None else [capture, fee_entry], platform=True, new_references=True)
    await _moved(uow, "charge", charge_id, captured, fee.amount_minor)


async def release_authorization(uow: UnitOfWork, hold_id: str) -> None:
    await ledger.void_pending(uow, hold_id)


async def refund(uow: UnitOfWork, refund_id: str, refunded: Money) -> None:
    """The merchant's balance pays the refund back to the acquirer (it may go negative until
    funds settle, as on Stripe)."""
    accounts = await _accounts(uow, refunded.currency)
    draft = ledger.EntryDraft(
        postings=_transfer(accounts.available, accounts.receivable, refunded),
        reference=f"{refund_id}:refund",
        description="refund",
    )
    await ledger.post_entry(uow, draft, new_references=True)
    await _moved(uow, "refund", refund_id, -refunded)


async def hold_dispute(uow: UnitOfWork, dispute_id: str, disputed: Money, fee: Money) -> str:
    """The disputed funds set aside from the merchant's available balance for the acquirer (a
    hold: returned if the dispute is won, posted if lost), and the dispute fee, which stays with
    the platform either way; the hold's entry id."""
    accounts = await _accounts(uow, disputed.currency)
    hold = ledger.EntryDraft(
        postings=_transfer(accounts.available, accounts.receivable, disputed),
        reference=f"{dispute_id}:dispute",
        description="dispute",
        pending=True,
    )
    drafts = [hold]
    if fee.amount_minor > 0:
        drafts.append(
            ledger.EntryDraft(
                postings=_transfer(accounts.available, accounts.fee_revenue, fee),
                reference=f"{dispute_id}:fee",
                description="dispute fee",
            )
        )
    results = await ledger.post_entries(uow, drafts, platform=True, new_references=True)
    # The held funds are not posted yet: only the fee moves the balance now.
    await _moved(uow, "adjustment", dispute_id, Money(0, disputed.currency), fee.amount_minor)
    return results[0].entry["id"]


async def close_dispute(uow: UnitOfWork, dispute_id: str, hold_id: str, disputed: Money, *, won: bool) -> None:
    """A won dispute gives the funds back to the merchant; a lost one pays them to the acquirer."""
    if won:
        await ledger.void_pending(uow, hold_id)
    else:
        await ledger.post_pending(uow, hold_id)
        await _moved(uow, "adjustment", dispute_id, -disputed)


async def settle(uow: UnitOfWork, settlement_id: str, *, net: Money, released: Money, charges: list[str]) -> str | None:
    """A settlement in one entry: the cash the acquirer paid the platform (or took back, when
    refunds and lost disputes outweigh the captures) is no longer owed; the captures' net moves
    from the merchant's pending balance to its available one, and their balance transactions are
    available from now. The entry's id; None when both are zero."""
    await repository.release_balance_transactions(uow.connection, uow.tenant, charges, uow.now())
    accounts = await _accounts(uow, net.currency)
    cash_name = "settlement_cash"
    cash = ledger.AccountDraft(
        net.currency, ledger.AccountType.ASSET, _code(cash_name, net.currency), name=cash_name, stripes=_PLATFORM_STRIPES
    )
    postings: list[ledger.PostingDraft] = []
    if net.amount_minor > 0:
        postings += _transfer(await ledger.ensure_account(uow, cash, platform=True), accounts.receivable, net)
    elif net.amount_minor < 0:
        postings += _transfer(accounts.receivable, await ledger.ensure_account(uow, cash, platform=True), -net)
    if released.amount_minor > 0:
        postings += _transfer(accounts.pending, accounts.available, released)
    if not postings:
        return None
    draft = ledger.EntryDraft(postings=tuple(postings), reference=f"{settlement_id}:settlement", description="settlement")
    entry = await ledger.post_entry(uow, draft, platform=True, new_references=True)
    return entry["id"]


async def _balances(uow: UnitOfWork, name: str) -> list[BalanceAmount]:
    prefix = _code(name, "")
    accounts = await ledger.accounts_by_code_prefix(uow, prefix)
    return [
        BalanceAmount(amount=(await ledger.balance(uow, account_id))["posted"], currency=code.removeprefix(prefix))
        for code, account_id in accounts.items()
    ]


async def retrieve_balance(uow: UnitOfWork) -> Balance:
    """The merchant's balance by currency, read from its ledger accounts (a currency appears once
    it has had a payment)."""
    return Balance(
        object="balance",
        available=await _balances(uow, "balance_available"),
        pending=await _balances(uow, "balance_pending"),
        livemode=uow.tenant.livemode,
    )


def balance_transaction_resource(row: AnyRow) -> BalanceTransaction:
    return BalanceTransaction(
        id=row["id"],
        object="balance_transaction",
        amount=row["amount"],
        fee=row["fee"],
        net=row["net"],
        currency=row["currency"],
        type=row["type"],
        source=row["source"],
        status=row["status"],
        available_on=unix_seconds(row["available_on"]),
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


async def retrieve_balance_transaction(uow: UnitOfWork, transaction_id: str) -> BalanceTransaction:
    row = (
        await repository.get_balance_transaction(uow.connection, uow.tenant, transaction_id)
        if is_id(transaction_id, "txn")
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such balance transaction: '{transaction_id}'", param="id")
    return balance_transaction_resource(row)


async def list_balance_transactions(
    uow: UnitOfWork, request: PageRequest, *, type_: str | None, source: str | None, currency: str | None
) -> BalanceTransactionList:
    await check_cursors(
        request,
        prefix="txn",
        noun="balance transaction",
        exists=lambda cursor: repository.balance_transaction_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_balance_transactions(
        uow.connection, uow.tenant, request, type_=type_, source=source, currency=currency
    )
    return BalanceTransactionList(
        object="list",
        url="/v1/balance_transactions",
        data=[balance_transaction_resource(row) for row in page.rows],
        has_more=page.has_more,
    )
