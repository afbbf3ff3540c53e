"""The facade other contexts post through: accounts found or made by code (the tenant's and the
platform's), and a hold posted together with another entry in one step."""

import pytest

from bastion import ledger
from bastion.ledger.errors import PlatformEntry
from bastion.platform.db import Actor, Tenant
from tests.support.platform import Credentials, Platform

ACTOR = Actor(id="test")


def _legs(debit: str, credit: str, amount: int) -> tuple[ledger.PostingDraft, ...]:
    return (ledger.PostingDraft(debit, "debit", amount, "EUR"), ledger.PostingDraft(credit, "credit", amount, "EUR"))


async def test_accounts_by_code_are_made_once_and_found_after(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    draft = ledger.AccountDraft("EUR", ledger.AccountType.ASSET, "test.receivable.EUR", stripes=2)
    async with platform.services.database.unit_of_work(tenant, ACTOR) as uow:
        made = await ledger.ensure_account(uow, draft)
        assert await ledger.ensure_account(uow, draft) == made
        assert await ledger.accounts_by_code_prefix(uow, "test.") == {"test.receivable.EUR": made}
        platform_account = await ledger.ensure_account(
            uow, ledger.AccountDraft("EUR", ledger.AccountType.REVENUE, "test.platform_revenue.EUR"), platform=True
        )
        # The platform's account is not the merchant's: not among its accounts by code.
        assert await ledger.accounts_by_code_prefix(uow, "test.platform") == {}
    async with platform.owner.transaction() as connection:
        owners = {row["code"]: row["merchant_id"] for row in await ledger.every_account_by_code_prefix(connection, "test.")}
    assert owners["test.receivable.EUR"] == merchant.merchant_id
    assert owners["test.platform_revenue.EUR"] == ledger.PLATFORM_MERCHANT_ID
    assert platform_account != made


async def test_a_hold_is_posted_with_another_entry_in_one_step(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    async with database.unit_of_work(tenant, ACTOR) as uow:
        asset = await ledger.ensure_account(uow, ledger.AccountDraft("EUR", ledger.AccountType.ASSET, "one.asset.EUR"))
        owed = await ledger.ensure_account(uow, ledger.AccountDraft("EUR", ledger.AccountType.LIABILITY, "one.owed.EUR"))
        revenue = await ledger.ensure_account(
            uow, ledger.AccountDraft("EUR", ledger.AccountType.REVENUE, "one.revenue.EUR"), platform=True
        )
    fee = ledger.EntryDraft(postings=_legs(owed, revenue, 50), reference="one-fee")

    async def without_platform() -> None:
        async with database.unit_of_work(tenant, ACTOR) as uow:
            hold = await ledger.post_entry(uow, ledger.EntryDraft(postings=_legs(asset, owed, 1000), pending=True))
            # The other entry reaches the platform's account: only a context's own call may.
            await ledger.post_pending(uow, hold["id"], 800, with_entry=fee)

    with pytest.raises(PlatformEntry):
        await without_platform()
    async with database.unit_of_work(tenant, ACTOR) as uow:
        hold = await ledger.post_entry(uow, ledger.EntryDraft(postings=_legs(asset, owed, 1000), pending=True))
        posted = await ledger.post_pending(uow, hold["id"], 800, platform=True, with_entry=fee)
        assert posted["pending_entry"] == hold["id"]
        assert (await ledger.balance(uow, owed))["posted"] == 800 - 50
        assert (await ledger.balance(uow, asset))["pending"] == 0
