from datetime import timedelta

import pytest

from bastion import bootstrap, ledger
from bastion.kernel.clock import now as real_now
from bastion.ledger import service
from bastion.platform.db import Actor, ServiceRoles, Tenant
from tests.support.platform import Credentials, Platform


async def test_probe(platform: Platform, merchant: Credentials, monkeypatch: pytest.MonkeyPatch) -> None:
    db = platform.services.database
    t = Tenant(merchant.merchant_id, False)
    async with db.unit_of_work(t, Actor(id="t")) as uow:
        a = (await ledger.create_account(uow, ledger.AccountDraft(currency="USD", type=ledger.AccountType.ASSET)))["id"]
        b = (await ledger.create_account(uow, ledger.AccountDraft(currency="USD", type=ledger.AccountType.LIABILITY, debits_must_not_exceed_credits=True)))["id"]
    async with db.unit_of_work(t, Actor(id="t")) as uow:
        await ledger.post_entry(uow, ledger.EntryDraft(postings=(ledger.PostingDraft(a, "debit", 100, "USD"), ledger.PostingDraft(b, "credit", 100, "USD"))))
        hold = await ledger.post_entry(uow, ledger.EntryDraft(pending=True, timeout_s=5, postings=(ledger.PostingDraft(b, "debit", 60, "USD"), ledger.PostingDraft(a, "credit", 60, "USD"))))
    for amount in (0, -5):
        try:
            async with db.unit_of_work(t, Actor(id="t")) as uow:
                print("post", amount, await ledger.post_pending(uow, hold["id"], amount))
        except Exception as e:
            print("post", amount, type(e), getattr(e, "code", None), e)
    later = real_now() + timedelta(seconds=10)
    monkeypatch.setattr(service, "now", lambda: later)
    async with db.unit_of_work(t, Actor(id="t")) as uow:
        print("balance b", await ledger.balance(uow, b))
    try:
        async with db.unit_of_work(t, Actor(id="t")) as uow:
            await ledger.post_entry(uow, ledger.EntryDraft(postings=(ledger.PostingDraft(b, "debit", 80, "USD"), ledger.PostingDraft(a, "credit", 80, "USD"))))
        print("debit 80 ok")
    except Exception as e:
        print("debit 80", type(e), getattr(e, "code", None), e)
    worker = bootstrap.role_database(platform.settings, platform.database.owner_url, ServiceRoles(platform.settings.db_role_prefix).worker)
    async with platform.owner.connection() as c:
        await c.execute(f'GRANT INSERT ON ledger_open_holds TO "{ServiceRoles(platform.settings.db_role_prefix).worker}"')
    try:
        print("expired", await ledger.expire_due_holds(worker))
        async with db.unit_of_work(t, Actor(id="t")) as uow:
            print("balance b", await ledger.balance(uow, b))
    except Exception as e:
        print("expire_due_holds", type(e), e)
    finally:
        await worker.dispose()
