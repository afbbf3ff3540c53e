"""Reviews over the API with the real vault and sandbox acquirer: the risk engine's `review`
authorizes without capturing and opens a review; approving lets the held-back capture proceed,
rejecting voids the authorization or refunds a payment captured meanwhile, each audited and
announced; a closed review cannot be decided again."""

from typing import Any

import httpx

from bastion.audit import repository as audit_repository
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.vault import payment_method

IN_REVIEW = 1_500


async def _reviewing(client: httpx.AsyncClient) -> None:
    made = await client.post("/v1/risk/rulesets", json={"rules": [{"id": "big", "rule": f"review if :amount: = {IN_REVIEW}"}]})
    assert made.status_code == 200, made.text
    assert (await client.post(f"/v1/risk/rulesets/{made.json()['id']}/activate", json={})).status_code == 200


async def _paid_in_review(
    platform: Platform, vault: ApiProcess, merchant: Credentials, capture_method: str = "automatic"
) -> tuple[dict[str, Any], dict[str, Any]]:
    method = await payment_method(platform, vault, merchant)
    async with platform.client(merchant) as client:
        body = {
            "amount": IN_REVIEW,
            "currency": "EUR",
            "payment_method": method,
            "confirm": True,
            "capture_method": capture_method,
        }
        intent = await client.post("/v1/payment_intents", json=body)
        assert intent.status_code == 200, intent.text
        [review] = (await client.get("/v1/reviews", params={"open": "true"})).json()["data"]
    return intent.json(), review


async def test_a_review_holds_the_capture_until_approved(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    async with platform.client(merchant) as client:
        await _reviewing(client)
    intent, review = await _paid_in_review(platform, vault, merchant)
    assert intent["status"] == "requires_capture"
    assert review["id"].startswith("prv_")
    assert {key: review[key] for key in ("object", "open", "reason", "opened_reason", "closed_reason", "rule")} == {
        "object": "review",
        "open": True,
        "reason": "rule",
        "opened_reason": "rule",
        "closed_reason": None,
        "rule": "big",
    }
    assert (review["charge"], review["payment_intent"]) == (intent["latest_charge"], intent["id"])
    async with platform.client(merchant) as client:
        charge = (await client.get(f"/v1/charges/{intent['latest_charge']}")).json()
        approved = await client.post(f"/v1/reviews/{review['id']}/approve")
        captured = (await client.get(f"/v1/payment_intents/{intent['id']}")).json()
        again = await client.post(f"/v1/reviews/{review['id']}/approve")
        missing = await client.post("/v1/reviews/prv_01M00000000000000000000000/approve")
        types = [event["type"] for event in (await client.get("/v1/events", params={"limit": 100})).json()["data"]]
    assert (charge["captured"], charge["outcome"]["type"], charge["outcome"]["rule"]["id"]) == (False, "manual_review", "big")
    assert approved.status_code == 200, approved.text
    assert (approved.json()["open"], approved.json()["closed_reason"], approved.json()["reason"]) == (
        False,
        "approved",
        "approved",
    )
    assert (captured["status"], captured["amount_received"]) == ("succeeded", IN_REVIEW)
    assert (again.status_code, again.json()["error"]["code"]) == (400, "review_closed")
    assert (missing.status_code, missing.json()["error"]["param"]) == (404, "id")
    assert {"review.opened", "review.closed"} <= set(types)
    async with platform.owner.transaction() as connection:
        rows = await audit_repository.events_for_resource(connection, review["id"])
    assert [(row["action_type"], row["actor"]) for row in rows] == [
        ("review.open", merchant.key_id),
        ("review.approved", merchant.key_id),
    ]


async def test_a_rejected_review_voids_the_authorization(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    async with platform.client(merchant) as client:
        await _reviewing(client)
    intent, review = await _paid_in_review(platform, vault, merchant)
    async with platform.client(merchant) as client:
        rejected = await client.post(f"/v1/reviews/{review['id']}/reject")
        canceled = (await client.get(f"/v1/payment_intents/{intent['id']}")).json()
    assert (rejected.json()["open"], rejected.json()["closed_reason"]) == (False, "refunded_as_fraud")
    assert (canceled["status"], canceled["cancellation_reason"]) == ("canceled", "fraudulent")


async def test_a_manual_capture_is_the_merchants_and_a_rejection_after_it_refunds(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    async with platform.client(merchant) as client:
        await _reviewing(client)
    intent, review = await _paid_in_review(platform, vault, merchant, capture_method="manual")
    async with platform.client(merchant) as client:
        captured = await client.post(f"/v1/payment_intents/{intent['id']}/capture", json={})
        assert captured.json()["status"] == "succeeded", captured.text
        rejected = await client.post(f"/v1/reviews/{review['id']}/reject")
        [refund] = (await client.get("/v1/refunds", params={"payment_intent": intent["id"]})).json()["data"]
    assert rejected.json()["closed_reason"] == "refunded_as_fraud"
    assert (refund["status"], refund["amount"], refund["reason"]) == ("succeeded", IN_REVIEW, "fraudulent")

    second, second_review = await _paid_in_review(platform, vault, merchant, capture_method="manual")
    async with platform.client(merchant) as client:
        approved = await client.post(f"/v1/reviews/{second_review['id']}/approve")
        still = (await client.get(f"/v1/payment_intents/{second['id']}")).json()
    assert approved.json()["closed_reason"] == "approved"
    assert still["status"] == "requires_capture", "approving a manual capture leaves the capture to the merchant"


async def test_the_fail_closed_policy_sends_to_review_without_a_rule(
    platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials
) -> None:
    method = await payment_method(platform, vault, merchant)
    async with platform.client(merchant) as client:
        settings = {"budget_ms": 200, "failure_policy": "fail_closed"}
        assert (await client.post("/v1/risk/settings", json=settings)).status_code == 200
        fingerprint = (await client.get(f"/v1/payment_methods/{method}")).json()["card"]["fingerprint"]
    # Another transaction holds the card's velocity row: the assessment waits past its budget.
    async with platform.owner.transaction() as connection:
        await connection.execute(
            "INSERT INTO risk_velocity_subjects VALUES ($1, false, $2, 0, 0, 0, 0, now(), now())",
            merchant.merchant_id,
            f"card:{fingerprint}",
        )
        async with platform.client(merchant) as client:
            body = {"amount": 2_000, "currency": "EUR", "payment_method": method, "confirm": True}
            intent = (await client.post("/v1/payment_intents", json=body)).json()
    async with platform.client(merchant) as client:
        [review] = (await client.get("/v1/reviews")).json()["data"]
        charge = (await client.get(f"/v1/charges/{intent['latest_charge']}")).json()
    assert intent["status"] == "requires_capture"
    assert (review["rule"], charge["outcome"]["risk_level"]) == (None, "not_assessed")
