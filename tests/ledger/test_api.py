"""The ledger over the real app and database: accounts, entries, holds, reversals,
balances now and as of a moment, statements, batches, and bad input named by field."""

from datetime import timedelta

from tests.support.ledger import create_account, get_balance, transfer
from tests.support.platform import Credentials, Platform


async def test_transfer_hold_post_void_reverse(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        cash = await create_account(client)
        wallet = await create_account(client, type="liability", code="wallet-1", flags={"credits_must_not_exceed_debits": False})
        created = await client.post("/v1/ledger/entries", json=transfer(cash, wallet, 1_000, reference="dep-1"))
        assert created.status_code == 200, created.text
        entry = created.json()
        assert entry["id"].startswith("le_")
        assert entry["status"] == "posted"
        assert (await get_balance(client, wallet))["posted"] == 1_000
        assert (await get_balance(client, cash))["posted"] == 1_000

        hold = (await client.post("/v1/ledger/entries", json=transfer(wallet, cash, 300, pending=True, timeout_s=60))).json()
        assert hold["status"] == "pending", hold
        wallet_balance = await get_balance(client, wallet)
        assert (wallet_balance["posted"], wallet_balance["pending"], wallet_balance["available"]) == (1_000, -300, 700)

        posted = await client.post(f"/v1/ledger/entries/{hold['id']}/post", json={"amount_minor": 200})
        assert posted.status_code == 200, posted.text
        assert posted.json()["type"] == "post_pending"
        wallet_balance = await get_balance(client, wallet)
        assert (wallet_balance["posted"], wallet_balance["pending"], wallet_balance["available"]) == (800, 0, 800)
        again = await client.post(f"/v1/ledger/entries/{hold['id']}/void", json={})
        assert again.status_code == 400
        assert again.json()["error"]["code"] == "hold_already_posted"
        assert (await client.get(f"/v1/ledger/entries/{hold['id']}")).json()["status"] == "posted"

        reversal = await client.post(f"/v1/ledger/entries/{entry['id']}/reverse", json={})
        assert reversal.status_code == 200, reversal.text
        assert (await get_balance(client, wallet))["posted"] == -200
        assert (await client.get(f"/v1/ledger/entries/{entry['id']}")).json()["reversed_by"] == reversal.json()["id"]

        statement = await client.get(f"/v1/ledger/accounts/{wallet}/statement")
        assert statement.status_code == 200, statement.text
        lines = statement.json()["data"]
        assert [line["balance_minor"] for line in lines] == [1_000, 800, -200]

        replay = await client.post("/v1/ledger/entries", json=transfer(cash, wallet, 1_000, reference="dep-1"))
        assert replay.json()["id"] == entry["id"]
        changed = await client.post("/v1/ledger/entries", json=transfer(cash, wallet, 1_001, reference="dep-1"))
        assert changed.status_code == 400
        assert changed.json()["error"]["param"] == "postings[0][amount_minor]"

        batch = await client.post(
            "/v1/ledger/entries/batch", json={"entries": [transfer(cash, wallet, n + 1) for n in range(100)]}
        )
        assert batch.status_code == 200, batch.text
        assert [item["result"] for item in batch.json()["results"]] == ["created"] * 100
        bad = await client.post(
            "/v1/ledger/entries/batch",
            json={"entries": [transfer(cash, wallet, 5), transfer(cash, "la_01ABCDEFGHJKMNPQRSTVWXYZ01", 5)]},
        )
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"]["param"] == "entries[1][postings][1][account]"
        assert bad.json()["error"]["results"][0]["code"] == "account_missing"


async def test_a_write_releases_holds_past_their_expiry_before_the_job(platform: Platform, merchant: Credentials) -> None:
    """The funds a read shows as available can be spent at once: a hold past its expiry
    is released by the write that needs its funds, not only by the worker's job."""
    async with platform.client(merchant) as client:
        cash = await create_account(client)
        wallet = await create_account(client, type="liability", flags={"debits_must_not_exceed_credits": True})
        assert (await client.post("/v1/ledger/entries", json=transfer(cash, wallet, 100))).status_code == 200
        hold = (await client.post("/v1/ledger/entries", json=transfer(wallet, cash, 60, pending=True, timeout_s=5))).json()
        refused = await client.post("/v1/ledger/entries", json=transfer(wallet, cash, 80))
        assert refused.json()["error"]["code"] == "exceeds_credits", "the hold still reserves 60 of 100"

        with platform.clock.shifted(timedelta(seconds=10)):
            assert (await get_balance(client, wallet))["available"] == 100
            spent = await client.post("/v1/ledger/entries", json=transfer(wallet, cash, 80))
        assert spent.status_code == 200, spent.text
        released = (await client.get(f"/v1/ledger/entries/{hold['id']}")).json()
        assert released["status"] == "expired"
        expiry = (await client.get(f"/v1/ledger/entries/{released['resolved_by']}")).json()
        assert (expiry["type"], expiry["pending_entry"]) == ("expire_pending", hold["id"])
        balance = await get_balance(client, wallet)
        assert (balance["posted"], balance["pending"], balance["available"]) == (20, 0, 20)
