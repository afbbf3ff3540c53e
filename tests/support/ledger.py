"""The ledger over HTTP, for tests: accounts, two-posting entries and balances."""

from typing import Any

import httpx


async def create_account(client: httpx.AsyncClient, currency: str = "USD", **fields: Any) -> str:
    """POST /v1/ledger/accounts (an asset account unless `type` says otherwise) and insist on success."""
    response = await client.post("/v1/ledger/accounts", json={"currency": currency, "type": "asset", **fields})
    assert response.status_code == 200, response.text
    account_id: str = response.json()["id"]
    return account_id


def transfer(debit: str, credit: str, amount: int, currency: str = "USD", **fields: Any) -> dict[str, Any]:
    """The body of an entry that moves `amount` from `credit` to `debit`."""
    return {
        "postings": [
            {"account": debit, "direction": "debit", "amount_minor": amount, "currency": currency},
            {"account": credit, "direction": "credit", "amount_minor": amount, "currency": currency},
        ],
        **fields,
    }


async def get_balance(client: httpx.AsyncClient, account: str, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/v1/ledger/accounts/{account}/balance", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body
