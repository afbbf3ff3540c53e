"""The local Stripe holds to Stripe's wire format and to the `stripe` package's typed parameters,
so that what the connector sends would be taken by Stripe; and Stripe's units of amounts."""

import secrets

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.kernel.money import CURRENCIES
from bastion.payments.stripe import AmountNotRepresentable, from_stripe_amount, to_stripe_amount
from tests.connectors.conftest import LocalStripe

_CARD_FORM = "type=card&card[number]=4242424242424242&card[exp_month]=12&card[exp_year]=2040"


def _client(local_stripe: LocalStripe, secret_key: str | None = None) -> httpx.AsyncClient:
    key = secret_key or f"sk_test_{secrets.token_hex(12)}"
    headers = {"authorization": f"Bearer {key}", "content-type": "application/x-www-form-urlencoded"}
    return httpx.AsyncClient(base_url=local_stripe.url, headers=headers, timeout=10)


async def test_a_parameter_the_package_does_not_type_is_refused_as_stripe_does(local_stripe: LocalStripe) -> None:
    # Card fields on the PaymentIntent itself: not among the package's PaymentIntent parameters.
    form = (
        "amount=2000&currency=eur&confirm=true&payment_method_data[type]=card&payment_method_data[card][number]=4242424242424242"
    )
    async with _client(local_stripe) as client:
        refused = await client.post("/v1/payment_intents", content=form, headers={"idempotency-key": "k1"})
        missing = await client.post("/v1/payment_intents", content="currency=eur")
        malformed = await client.post("/v1/payment_intents", content="amount=ten&currency=eur")

    assert refused.status_code == 400
    assert refused.json() == {
        "error": {
            "type": "invalid_request_error",
            "message": "Received unknown parameter: payment_method_data[card]",
            "code": "parameter_unknown",
            "param": "payment_method_data[card]",
        }
    }
    assert refused.headers["request-id"].startswith("req_")
    assert (missing.json()["error"]["code"], missing.json()["error"]["param"]) == ("parameter_missing", "amount")
    assert (malformed.json()["error"]["code"], malformed.json()["error"]["param"]) == ("parameter_invalid_integer", "amount")


async def test_a_key_replays_its_first_answer_and_refuses_other_parameters(local_stripe: LocalStripe) -> None:
    async with _client(local_stripe) as client:
        first = await client.post("/v1/payment_methods", content=_CARD_FORM, headers={"idempotency-key": "pm-1"})
        again = await client.post("/v1/payment_methods", content=_CARD_FORM, headers={"idempotency-key": "pm-1"})
        other = await client.post(
            "/v1/payment_methods", content=_CARD_FORM.replace("12", "11"), headers={"idempotency-key": "pm-1"}
        )

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert first.json()["card"]["last4"] == "4242"
    assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")


async def test_an_unknown_key_or_route_is_refused_in_stripes_envelope(local_stripe: LocalStripe) -> None:
    async with _client(local_stripe, secret_key="pk_test_123") as client:
        unauthenticated = await client.post("/v1/payment_methods", content=_CARD_FORM)
    async with _client(local_stripe) as client:
        unknown = await client.get("/v1/charges")

    assert unauthenticated.status_code == 401
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("currency", "amount", "at_stripe"),
    [("EUR", 1050, 1050), ("JPY", 500, 500), ("KWD", 1250, 1250), ("ISK", 1000, 100_000), ("UGX", 300, 300)],
)
def test_stripes_unit_of_each_currency(currency: str, amount: int, at_stripe: int) -> None:
    assert to_stripe_amount(amount, currency) == at_stripe
    assert from_stripe_amount(at_stripe, currency) == amount


def test_an_amount_finer_than_stripes_unit_is_refused() -> None:
    # ISO 4217 gives the Chilean unit of account four decimal places; Stripe's unit has two.
    assert to_stripe_amount(10_000, "CLF") == 100
    with pytest.raises(AmountNotRepresentable):
        to_stripe_amount(10_001, "CLF")


@given(amount=st.integers(min_value=0, max_value=10**15), currency=st.sampled_from(sorted(CURRENCIES)))
def test_every_amount_stripe_can_state_comes_back_the_same(amount: int, currency: str) -> None:
    try:
        at_stripe = to_stripe_amount(amount, currency)
    except AmountNotRepresentable:
        return
    assert from_stripe_amount(at_stripe, currency) == amount
