"""The official Stripe Node SDK (`stripe` from npm, run by Node.js) drives a live `bastion serve`:
tests/sdk/node/scenarios.mjs runs every scenario once and prints what the SDK answered and
raised; each test here asserts on one scenario's part of that report (issue 18)."""

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.asgi import serving
from tests.support.serve import LiveBastion
from tests.support.stripe_sdk import RetryingFront, stripe_signed_delivery

pytestmark = [pytest.mark.slow, pytest.mark.processes]

NODE_DIR = Path(__file__).parent / "node"
# Every scenario, each request bounded by the SDK's own timeout (scenarios.mjs).
NODE_TIMEOUT_S = 180


def _node(script: str, env: dict[str, str], stdin: bytes = b"") -> dict[str, Any]:
    """What `script` printed, as JSON; fails with what it wrote to stderr."""
    node = shutil.which("node")
    assert node is not None, "no node on PATH: `make test` installs Node.js (scripts/system-packages)"
    installed = NODE_DIR / "node_modules" / "stripe"
    assert installed.is_dir(), f"no {installed}: `make test` installs it from tests/sdk/node/package-lock.json"
    ran = subprocess.run(
        [node, script],
        cwd=NODE_DIR,
        env={"PATH": os.environ["PATH"], **env},
        input=stdin,
        capture_output=True,
        timeout=NODE_TIMEOUT_S,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr.decode(errors="replace")
    printed: dict[str, Any] = json.loads(ran.stdout)
    return printed


@pytest.fixture(scope="module")
def front(bastion: LiveBastion) -> Iterator[tuple[RetryingFront, str]]:
    """The front that loses the SDK's first answer, and its URL."""
    lossy = RetryingFront(bastion.serve.api_url)
    with serving(lossy, name="front that loses an answer") as port:
        yield lossy, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def report(bastion: LiveBastion, front: tuple[RetryingFront, str]) -> dict[str, Any]:
    shop = bastion.merchant()
    return _node(
        "scenarios.mjs",
        {
            "BASTION_API_URL": bastion.serve.api_url,
            "BASTION_VAULT_URL": bastion.serve.vault_url,
            "BASTION_FRONT_URL": front[1],
            "BASTION_SECRET_KEY": shop.secret,
            "BASTION_PUBLISHABLE_KEY": shop.publishable,
        },
    )


def _scenario(report: dict[str, Any], name: str) -> dict[str, Any]:
    """One scenario's part of the report, once it ran to its end."""
    part: dict[str, Any] = report[name]
    assert part["ok"], json.dumps(part["error"], indent=2)
    return part


def test_customers_are_created_updated_retrieved_and_deleted(report: dict[str, Any]) -> None:
    customers = _scenario(report, "customers")
    assert customers["object"] == "customer"
    assert customers["id"].startswith("cus_")
    assert customers["email"] == "jenny@example.com"
    assert customers["metadata"] == {"order": "6735", "channel": "web"}
    assert customers["requestId"].startswith("req_")
    assert customers["updatedPhone"] == "+1 555 555 0100"
    assert customers["updatedMetadata"] == {"channel": "web"}
    assert customers["retrievedSameAsUpdated"] is True
    assert customers["deleted"] == {"id": customers["id"], "deleted": True}


def test_auto_pagination_lists_every_customer_once_newest_first(report: dict[str, Any]) -> None:
    paged = _scenario(report, "autoPagination")
    newest_first = paged["created"][::-1]
    assert len(set(newest_first)) == len(newest_first) == 7
    assert paged["iterated"] == newest_first
    assert paged["collected"] == newest_first
    assert paged["firstPage"] == {"count": 3, "hasMore": True}


def test_a_payment_method_is_made_from_a_vault_token(report: dict[str, Any]) -> None:
    method = _scenario(report, "paymentMethod")
    assert method["id"].startswith("pm_")
    assert (method["object"], method["brand"], method["last4"]) == ("payment_method", "mastercard", "4444")
    reused = method["reused"]
    assert (reused["type"], reused["code"], reused["param"]) == ("StripeInvalidRequestError", "token_already_used", "card[token]")


def test_payment_intents_are_confirmed_captured_in_part_and_canceled(report: dict[str, Any]) -> None:
    intents = _scenario(report, "paymentIntents")
    assert intents["paid"]["status"] == "succeeded"
    assert intents["paid"]["amountReceived"] == 2000
    assert intents["paid"]["latestCharge"].startswith("ch_")
    assert intents["later"] == {"status": "requires_confirmation"}
    assert intents["confirmed"] == {"status": "succeeded", "amountReceived": 1500}
    assert intents["held"] == {"status": "requires_capture", "amountCapturable": 5000}
    assert intents["captured"] == {"status": "succeeded", "amountReceived": 3000}
    assert intents["canceled"] == {"status": "canceled"}
    assert intents["expanded"] == {
        "paymentMethodLast4": "4242",
        "latestCharge": {"id": intents["paid"]["latestCharge"], "object": "charge"},
    }


def test_a_refund_returns_part_of_a_payment(report: dict[str, Any]) -> None:
    refunded = _scenario(report, "refund")
    assert refunded["refund"] == {
        "object": "refund",
        "status": "succeeded",
        "amount": 500,
        "paymentIntent": refunded["paymentIntent"],
    }


def test_a_declined_card_raises_card_error_with_its_decline_code(report: dict[str, Any]) -> None:
    declined = _scenario(report, "cardError")
    assert declined["type"] == "StripeCardError"
    assert (declined["statusCode"], declined["code"], declined["declineCode"]) == (402, "card_declined", "insufficient_funds")
    assert declined["paymentIntent"].startswith("pi_")
    assert declined["paymentIntentStatus"] == "requires_payment_method"
    assert declined["requestId"].startswith("req_")


def test_bad_parameters_and_missing_objects_raise_invalid_request_error(report: dict[str, Any]) -> None:
    refused = _scenario(report, "invalidRequest")
    bad = refused["badParameter"]
    assert bad["type"] == "StripeInvalidRequestError"
    assert (bad["statusCode"], bad["code"], bad["param"]) == (400, "parameter_invalid", "email")
    missing = refused["missing"]
    assert (missing["type"], missing["statusCode"], missing["code"]) == ("StripeInvalidRequestError", 404, "resource_missing")


def test_a_wrong_key_raises_authentication_error(report: dict[str, Any]) -> None:
    refused = _scenario(report, "authentication")
    assert (refused["type"], refused["statusCode"]) == ("StripeAuthenticationError", 401)
    assert refused["requestId"].startswith("req_")


def test_the_same_idempotency_key_replays_and_another_body_raises_idempotency_error(report: dict[str, Any]) -> None:
    idempotency = _scenario(report, "idempotency")
    assert idempotency["again"] == idempotency["first"]
    assert (idempotency["firstReplayed"], idempotency["againReplayed"]) == (None, "true")
    assert (idempotency["otherBody"]["type"], idempotency["otherBody"]["statusCode"]) == ("StripeIdempotencyError", 400)


def test_the_sdk_retries_a_lost_answer_with_its_own_idempotency_key(
    report: dict[str, Any], front: tuple[RetryingFront, str]
) -> None:
    retried = _scenario(report, "sdkRetry")
    forwarded = front[0].forwarded
    # The first request reached Bastion and its answer was lost; the retry, with the same key, replayed it.
    assert forwarded[0].idempotency_key
    assert [request.idempotency_key for request in forwarded] == [forwarded[0].idempotency_key] * 2
    assert [request.replayed for request in forwarded] == [False, True]
    assert retried["id"].startswith("cus_")
    assert retried["replayed"] == "true"


def test_an_answer_names_the_idempotency_key_it_answers(report: dict[str, Any], front: tuple[RetryingFront, str]) -> None:
    # Stripe's answers carry the request's Idempotency-Key, which the SDK shows as lastResponse.idempotencyKey.
    retried = _scenario(report, "sdkRetry")
    assert retried["idempotencyKey"] == front[0].forwarded[0].idempotency_key
    idempotency = _scenario(report, "idempotency")
    assert idempotency["firstKey"] == idempotency["againKey"] == idempotency["key"]


def test_the_node_verifier_accepts_a_delivery_and_refuses_it_tampered(bastion: LiveBastion) -> None:
    delivery = stripe_signed_delivery(bastion, bastion.merchant())
    given = {"payload": base64.b64encode(delivery.payload).decode(), "signature": delivery.signature, "secret": delivery.secret}
    verified = _node("verify-webhook.mjs", {}, json.dumps(given).encode())
    assert verified["delivered"]["accepted"] is True, verified["delivered"]
    assert verified["delivered"]["type"] == "payment_intent.succeeded"
    assert verified["delivered"]["object"] == delivery.payment_intent
    assert verified["tamperedChanged"] is True
    assert verified["tampered"] == {"accepted": False, "error": "StripeSignatureVerificationError"}
    assert verified["wrongSecret"] == {"accepted": False, "error": "StripeSignatureVerificationError"}
