"""The official Stripe Python SDK (`stripe`, from PyPI) drives a live `bastion serve` as a team
that moves from Stripe would: the same calls, parameters, error classes and webhook verifier,
only the base address and the keys changed (issue 18). Each test has a merchant of its own."""

import pytest
import stripe

from tests.support.asgi import serving
from tests.support.platform import Credentials
from tests.support.serve import LiveBastion
from tests.support.stripe_sdk import (
    INSUFFICIENT_FUNDS,
    MASTERCARD,
    RetryingFront,
    payment_method,
    sdk_client,
    stripe_signed_delivery,
)

pytestmark = [pytest.mark.slow, pytest.mark.processes]

# Each API key may send RATE_LIMIT_BURST requests at once, then one a second: no scenario here
# sends as many, and the rate limit's scenario reaches the limit in about as many requests.
RATE_LIMIT_BURST = 60
SERVE_SETTINGS = {"BASTION_RATE_LIMIT_BURST": str(RATE_LIMIT_BURST), "BASTION_RATE_LIMIT_PER_S": "1"}
CUSTOMERS_PAGED = 7
PAGE_SIZE = 3


@pytest.fixture
def shop(bastion: LiveBastion) -> Credentials:
    return bastion.merchant()


@pytest.fixture
def client(bastion: LiveBastion, shop: Credentials) -> stripe.StripeClient:
    return sdk_client(bastion.serve.api_url, shop.secret)


def test_customers_are_created_updated_retrieved_and_deleted(client: stripe.StripeClient) -> None:
    created = client.v1.customers.create(
        {"email": "jenny@example.com", "name": "Jenny Rosen", "metadata": {"order": "6735", "channel": "web"}}
    )
    assert created.object == "customer"
    assert created.id.startswith("cus_")
    assert created.email == "jenny@example.com"
    assert created.metadata is not None
    assert created.metadata.to_dict() == {"order": "6735", "channel": "web"}
    assert created.last_response is not None
    assert (created.last_response.request_id or "").startswith("req_")

    # Stripe unsets a metadata key sent empty.
    updated = client.v1.customers.update(created.id, {"phone": "+1 555 555 0100", "metadata": {"order": ""}})
    assert updated.phone == "+1 555 555 0100"
    assert updated.metadata is not None
    assert updated.metadata.to_dict() == {"channel": "web"}

    retrieved = client.v1.customers.retrieve(created.id)
    assert retrieved.to_dict() == updated.to_dict()

    deleted = client.v1.customers.delete(created.id)
    assert deleted.id == created.id
    assert deleted.deleted is True
    assert [customer.id for customer in client.v1.customers.list().auto_paging_iter()] == []


def test_auto_pagination_lists_every_customer_once_newest_first(client: stripe.StripeClient) -> None:
    created = [client.v1.customers.create({"name": f"Paged {number}"}).id for number in range(CUSTOMERS_PAGED)]

    first_page = client.v1.customers.list({"limit": PAGE_SIZE})
    assert len(first_page.data) == PAGE_SIZE
    assert first_page.has_more is True
    listed = [customer.id for customer in first_page.auto_paging_iter()]
    assert listed == created[::-1]


def test_a_payment_method_is_made_from_a_vault_token(
    bastion: LiveBastion, client: stripe.StripeClient, shop: Credentials
) -> None:
    token = bastion.card_token(shop, MASTERCARD)
    method = client.v1.payment_methods.create({"type": "card", "card": {"token": token}})
    assert method.object == "payment_method"
    assert method.id.startswith("pm_")
    assert method.card is not None
    assert (method.card.brand, method.card.last4) == ("mastercard", "4444")
    assert client.v1.payment_methods.retrieve(method.id).id == method.id
    with pytest.raises(stripe.InvalidRequestError) as reused:
        client.v1.payment_methods.create({"type": "card", "card": {"token": token}})
    assert (reused.value.code, reused.value.param) == ("token_already_used", "card[token]")


def test_payment_intents_are_confirmed_captured_in_part_and_canceled(
    bastion: LiveBastion, client: stripe.StripeClient, shop: Credentials
) -> None:
    paid = client.v1.payment_intents.create(
        {"amount": 2000, "currency": "eur", "payment_method": payment_method(bastion, client, shop), "confirm": True}
    )
    assert (paid.status, paid.amount_received) == ("succeeded", 2000)
    assert isinstance(paid.latest_charge, str)
    assert paid.latest_charge.startswith("ch_")

    later = client.v1.payment_intents.create(
        {"amount": 1500, "currency": "eur", "payment_method": payment_method(bastion, client, shop)}
    )
    assert later.status == "requires_confirmation"
    confirmed = client.v1.payment_intents.confirm(later.id)
    assert (confirmed.status, confirmed.amount_received) == ("succeeded", 1500)

    held = client.v1.payment_intents.create(
        {
            "amount": 5000,
            "currency": "eur",
            "capture_method": "manual",
            "payment_method": payment_method(bastion, client, shop, MASTERCARD),
            "confirm": True,
        }
    )
    assert (held.status, held.amount_capturable) == ("requires_capture", 5000)
    captured = client.v1.payment_intents.capture(held.id, {"amount_to_capture": 3000})
    assert (captured.status, captured.amount_received, captured.amount_capturable) == ("succeeded", 3000, 0)

    voided = client.v1.payment_intents.create(
        {
            "amount": 4000,
            "currency": "eur",
            "capture_method": "manual",
            "payment_method": payment_method(bastion, client, shop),
            "confirm": True,
        }
    )
    canceled = client.v1.payment_intents.cancel(voided.id)
    assert (canceled.status, canceled.amount_received) == ("canceled", 0)


def test_expand_answers_the_customer_payment_method_and_latest_charge(
    bastion: LiveBastion, client: stripe.StripeClient, shop: Credentials
) -> None:
    customer = client.v1.customers.create({"email": "ada@example.com"})
    method = payment_method(bastion, client, shop)
    intent = client.v1.payment_intents.create(
        {"amount": 2500, "currency": "eur", "customer": customer.id, "payment_method": method, "confirm": True}
    )

    expanded = client.v1.payment_intents.retrieve(intent.id, {"expand": ["customer", "payment_method", "latest_charge"]})
    assert isinstance(expanded.customer, stripe.Customer)
    assert (expanded.customer.id, expanded.customer.email) == (customer.id, "ada@example.com")
    assert isinstance(expanded.payment_method, stripe.PaymentMethod)
    assert expanded.payment_method.id == method
    assert expanded.payment_method.card is not None
    assert expanded.payment_method.card.last4 == "4242"
    assert isinstance(expanded.latest_charge, stripe.Charge)
    assert (expanded.latest_charge.id, expanded.latest_charge.amount) == (intent.latest_charge, 2500)
    # Without expand, ids.
    assert client.v1.payment_intents.retrieve(intent.id).customer == customer.id
    # On a list, each object's fields, auto-pagination included.
    listed = client.v1.payment_intents.list({"limit": 1, "expand": ["data.customer"]}).auto_paging_iter()
    assert [(type(item.customer), item.id) for item in listed] == [(stripe.Customer, intent.id)]


def test_a_refund_returns_part_of_a_payment(bastion: LiveBastion, client: stripe.StripeClient, shop: Credentials) -> None:
    intent = client.v1.payment_intents.create(
        {"amount": 3000, "currency": "eur", "payment_method": payment_method(bastion, client, shop), "confirm": True}
    )
    refund = client.v1.refunds.create({"payment_intent": intent.id, "amount": 500})
    assert refund.object == "refund"
    assert (refund.status, refund.amount, refund.payment_intent) == ("succeeded", 500, intent.id)
    assert client.v1.refunds.retrieve(refund.id).amount == 500


def test_a_declined_card_raises_card_error_with_its_decline_code(
    bastion: LiveBastion, client: stripe.StripeClient, shop: Credentials
) -> None:
    method = payment_method(bastion, client, shop, INSUFFICIENT_FUNDS)
    with pytest.raises(stripe.CardError) as declined:
        client.v1.payment_intents.create({"amount": 2000, "currency": "eur", "payment_method": method, "confirm": True})
    error = declined.value
    assert error.http_status == 402
    assert error.code == "card_declined"
    assert error.error is not None
    assert error.error.decline_code == "insufficient_funds"
    assert error.error.payment_intent is not None
    assert error.error.payment_intent.status == "requires_payment_method"
    assert (error.request_id or "").startswith("req_")
    intent = client.v1.payment_intents.retrieve(error.error.payment_intent.id)
    assert intent.last_payment_error is not None
    assert intent.last_payment_error.decline_code == "insufficient_funds"


def test_a_bad_parameter_raises_invalid_request_error_naming_it(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.customers.create({"email": "nope"})
    assert (refused.value.http_status, refused.value.code, refused.value.param) == (400, "parameter_invalid", "email")

    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.customers.retrieve("cus_missing")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    assert (missing.value.request_id or "").startswith("req_")


def test_a_wrong_key_raises_authentication_error(bastion: LiveBastion, shop: Credentials) -> None:
    wrong = sdk_client(bastion.serve.api_url, f"{shop.secret[:-4]}XXXX")
    with pytest.raises(stripe.AuthenticationError) as refused:
        wrong.v1.customers.list()
    assert refused.value.http_status == 401
    assert (refused.value.request_id or "").startswith("req_")


def test_a_key_without_the_scope_raises_permission_error(bastion: LiveBastion) -> None:
    restricted = bastion.merchant(scopes=["customers:read", "customers:write"])
    client = sdk_client(bastion.serve.api_url, restricted.secret)
    assert client.v1.customers.list().data == []
    with pytest.raises(stripe.PermissionError) as refused:
        client.v1.payment_intents.list()
    assert refused.value.http_status == 403
    with pytest.raises(stripe.PermissionError):
        client.v1.refunds.create({"payment_intent": "pi_none", "amount": 100})


def test_the_same_idempotency_key_replays_and_another_body_raises_idempotency_error(client: stripe.StripeClient) -> None:
    first = client.v1.customers.create({"name": "Once"}, {"idempotency_key": "order-6735"})
    again = client.v1.customers.create({"name": "Once"}, {"idempotency_key": "order-6735"})
    assert again.id == first.id
    assert first.last_response is not None
    assert again.last_response is not None
    assert "Idempotent-Replayed" not in first.last_response.headers
    assert again.last_response.headers["Idempotent-Replayed"] == "true"

    with pytest.raises(stripe.IdempotencyError) as refused:
        client.v1.customers.create({"name": "Twice"}, {"idempotency_key": "order-6735"})
    assert refused.value.http_status == 400
    assert [customer.id for customer in client.v1.customers.list().auto_paging_iter()] == [first.id]


def test_an_answer_names_the_idempotency_key_it_answers(client: stripe.StripeClient) -> None:
    # Stripe's answers carry the request's Idempotency-Key, which the SDK shows as last_response.idempotency_key.
    named = client.v1.customers.create({"name": "Named"}, {"idempotency_key": "order-6736"})
    assert named.last_response is not None
    assert named.last_response.idempotency_key == "order-6736"
    generated = client.v1.customers.create({"name": "Generated"})
    assert generated.last_response is not None
    assert generated.last_response.idempotency_key


def test_the_sdk_retries_a_lost_answer_with_its_own_idempotency_key(bastion: LiveBastion, shop: Credentials) -> None:
    front = RetryingFront(bastion.serve.api_url)
    with serving(front, name="front that loses an answer") as port:
        client = sdk_client(f"http://127.0.0.1:{port}", shop.secret, max_network_retries=2)
        created = client.v1.customers.create({"name": "Retried"})

    # The SDK's first request reached Bastion; its answer was lost to a 503; the SDK sent the
    # same request again with the same key, and Bastion replayed the first answer.
    assert [request.idempotency_key for request in front.forwarded] == [front.forwarded[0].idempotency_key] * 2
    assert front.forwarded[0].idempotency_key
    assert [request.replayed for request in front.forwarded] == [False, True]
    assert front.forwarded[1].body == front.forwarded[0].body
    assert created.last_response is not None
    assert created.last_response.headers["Idempotent-Replayed"] == "true"
    client = sdk_client(bastion.serve.api_url, shop.secret)
    assert [customer.id for customer in client.v1.customers.list().auto_paging_iter()] == [created.id]


def _list_customers(client: stripe.StripeClient, times: int) -> None:
    for _ in range(times):
        client.v1.customers.list({"limit": 1})


def test_past_the_rate_limit_the_sdk_raises_rate_limit_error(bastion: LiveBastion) -> None:
    client = sdk_client(bastion.serve.api_url, bastion.merchant().secret)
    _list_customers(client, RATE_LIMIT_BURST)
    with pytest.raises(stripe.RateLimitError) as limited:
        # What the bucket refilled meanwhile, one a second, then the limit.
        _list_customers(client, RATE_LIMIT_BURST)
    assert limited.value.http_status == 429
    assert limited.value.headers is not None
    assert int(limited.value.headers["Retry-After"]) >= 1


def test_the_python_verifier_accepts_a_delivery_and_refuses_it_tampered(bastion: LiveBastion, shop: Credentials) -> None:
    delivery = stripe_signed_delivery(bastion, shop)

    event = stripe.Webhook.construct_event(delivery.payload, delivery.signature, delivery.secret)
    assert event.type == "payment_intent.succeeded"
    assert event.data.object["id"] == delivery.payment_intent

    tampered = delivery.payload.replace(b'"succeeded"', b'"canceled"', 1)
    assert tampered != delivery.payload
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, delivery.signature, delivery.secret)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivery.payload, delivery.signature, "whsec_" + "0" * 32)
