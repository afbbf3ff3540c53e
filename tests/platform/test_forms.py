"""Form-encoded bodies as Stripe's SDKs send them: decoded at the edge into the same typed
request as JSON, with the same limits and errors; a bad form is a 400 naming the parameter,
never a 500."""

from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode
from structlog.testing import capture_logs

from bastion.platform.http.errors import BodyInvalidForm, FormLimitExceeded, ParameterDuplicated
from bastion.platform.http.forms import FORM_ARRAY_ITEMS_MAX, FORM_FIELDS_MAX, FORM_NESTING_MAX, decode_form
from tests.support.platform import Credentials, Platform

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def stripe_encoded(params: dict[str, Any]) -> bytes:
    """`params` encoded exactly as the official Python SDK encodes a request body."""
    return urlencode(list(_api_encode(params))).encode()


def test_brackets_nest_objects_and_arrays() -> None:
    body = (
        b"email=a%40b.c&metadata[order]=6735&metadata[note]=two+words"
        b"&expand[0]=customer&expand[1]=latest_charge&tags[]=x&tags[]=y"
    )
    assert decode_form(body) == {
        "email": "a@b.c",
        "metadata": {"order": "6735", "note": "two words"},
        # Indices stay keys until the route's schema says the field is an array.
        "expand": {"0": "customer", "1": "latest_charge"},
        "tags": ["x", "y"],
    }
    assert decode_form(b"") == {}
    assert decode_form(b"description=&&metadata[k]=") == {"description": "", "metadata": {"k": ""}}


@pytest.mark.parametrize(
    ("body", "error", "param"),
    [
        (b"a=1&a=2", ParameterDuplicated, "a"),
        (b"a[b]=1&a[b]=2", ParameterDuplicated, "a[b]"),
        (b"a=1&a[b]=2", ParameterDuplicated, "a"),
        (b"a[b]=2&a=1", ParameterDuplicated, "a"),
        (b"a[]=1&a=2", ParameterDuplicated, "a"),
        (b"a[b]=1&a[]=2", ParameterDuplicated, "a"),
        (b"email", BodyInvalidForm, "email"),
        (b"a[b=1", BodyInvalidForm, "a[b"),
        (b"a]=1", BodyInvalidForm, "a]"),
        (b"[a]=1", BodyInvalidForm, "[a]"),
        (b"a[][b]=1", BodyInvalidForm, "a[][b]"),
        (b"name=%ff%fe", BodyInvalidForm, "name"),
        (b"\xff\xfe=1", BodyInvalidForm, None),
        (b"a" + b"[b]" * (FORM_NESTING_MAX + 1) + b"=1", FormLimitExceeded, "a" + "[b]" * (FORM_NESTING_MAX + 1)),
        (b"&".join([b"a[]=1"] * (FORM_ARRAY_ITEMS_MAX + 1)), FormLimitExceeded, "a[]"),
        (b"&".join(b"k%d=1" % i for i in range(FORM_FIELDS_MAX + 1)), FormLimitExceeded, None),
        (b"n" * 300 + b"=1", FormLimitExceeded, "n" * 64),
    ],
)
def test_a_bad_form_names_its_parameter(body: bytes, error: type[Exception], param: str | None) -> None:
    with pytest.raises(error) as raised:
        decode_form(body)
    assert getattr(raised.value, "param", None) == param


async def test_the_sdks_encoding_gives_the_same_objects_as_json(platform: Platform, merchant: Credentials) -> None:
    params = {"email": "jenny@example.com", "name": "Jenny Rosen", "metadata": {"order": "6735", "tier": "gold"}}
    async with platform.client(merchant) as client:
        as_form = (await client.post("/v1/customers", content=stripe_encoded(params), headers=FORM)).json()
        as_json = (await client.post("/v1/customers", json=params)).json()
        assert {**as_form, "id": None, "created": None} == {**as_json, "id": None, "created": None}

        # Integers, booleans and enums are typed by the route's schema; "" unsets what may be null.
        intent = await client.post(
            "/v1/payment_intents",
            content=stripe_encoded(
                {"amount": 2950, "currency": "eur", "confirm": False, "capture_method": "manual", "customer": as_form["id"]}
            ),
            headers=FORM,
        )
        assert intent.status_code == 200, intent.text
        # Currencies are taken in Stripe's small letters too, and answered in capitals.
        assert (intent.json()["amount"], intent.json()["currency"], intent.json()["capture_method"]) == (2950, "EUR", "manual")
        updated = await client.post(
            f"/v1/customers/{as_form['id']}",
            content=b"name=&metadata[order]=&metadata[new]=1",
            headers=FORM,
        )
        assert updated.status_code == 200, updated.text
        assert (updated.json()["name"], updated.json()["metadata"]) == (None, {"tier": "gold", "new": "1"})


@pytest.mark.parametrize(
    "case",
    [
        ("/v1/payment_intents", b"amount=12.5&currency=EUR", "amount", "parameter_invalid"),
        ("/v1/payment_intents", b"amount=100&currency=EUR&confirm=yes", "confirm", "parameter_invalid"),
        ("/v1/payment_intents", b"amount=100&currency=EUR&capture_method=later", "capture_method", "parameter_invalid"),
        ("/v1/payment_intents", b"currency=EUR", "amount", "parameter_missing"),
        ("/v1/payment_intents", b"amount=100&currency=EUR&expand[0]=invoice", "expand[0]", "parameter_invalid"),
        ("/v1/payment_intents", b"amount=100&currency=EUR&expand[1]=customer", "expand", "body_invalid_form"),
        ("/v1/customers", b"emial=jenny%40example.com", "emial", "parameter_unknown"),
        ("/v1/customers", b"metadata[k]=" + b"v" * 501, "metadata[k]", "parameter_invalid"),
        ("/v1/customers", b"name=%00", "name", "parameter_invalid"),
        ("/v1/customers", b"email=a%40b.c&email=c%40d.e", "email", "parameter_duplicated"),
    ],
)
async def test_bad_parameters_are_refused_as_in_json(
    platform: Platform, merchant: Credentials, case: tuple[str, bytes, str, str]
) -> None:
    path, body, param, code = case
    async with platform.client(merchant) as client:
        response = await client.post(path, content=body, headers=FORM)
        listed = (await client.get("/v1/customers")).json()["data"]
    assert response.status_code == 400, response.text
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (param, code)
    assert listed == [], "nothing is written"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.lists(st.sampled_from([b"a", b"[", b"]", b"=", b"&", b"%", b"0", b"%ff", b"+"]), max_size=60).map(b"".join),
    )
)
async def test_any_form_body_is_answered_without_a_server_error(platform: Platform, merchant: Credentials, body: bytes) -> None:
    async with platform.client(merchant) as client:
        for path in ("/v1/customers", "/v1/payment_intents", "/v1/refunds"):
            response = await client.post(path, content=body, headers=FORM)
            assert response.status_code < 500, (path, body, response.text)
            if response.status_code == 400:
                assert response.json()["error"]["type"] == "invalid_request_error"


async def test_a_form_request_is_logged_by_its_route_with_the_stripe_version(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        with capture_logs() as logs:
            response = await client.post(
                "/v1/customers", content=b"name=Jenny", headers={**FORM, "Stripe-Version": "2026-10-28.endive"}
            )
    assert response.status_code == 200, response.text
    requests = [record for record in logs if record.get("event") == "request"]
    assert requests[-1]["route"] == "/v1/customers"
    assert requests[-1]["stripe_version"] == "2026-10-28.endive"


async def test_query_arrays_are_taken_in_the_sdks_spelling(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        customer = await platform.create_customer(merchant, email="jenny@example.com")
        intent = (
            await client.post("/v1/payment_intents", json={"amount": 100, "currency": "EUR", "customer": customer["id"]})
        ).json()
        for query in ("expand%5B0%5D=customer", "expand[0]=customer", "expand[]=customer", "expand=customer"):
            fetched = await client.get(f"/v1/payment_intents/{intent['id']}?{query}")
            assert fetched.json()["customer"] == customer, query
        listed = await client.get(f"/v1/payment_intents?created%5Bgte%5D={intent['created']}&limit=1")
        assert [item["id"] for item in listed.json()["data"]] == [intent["id"]]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"4242424242424242": "x"}', "application/json"),
        (b"4242424242424242=x", "application/x-www-form-urlencoded"),
        (b"4242424242424242", "application/x-www-form-urlencoded"),
        (b"metadata[4242 4242 4242 4242=1", "application/x-www-form-urlencoded"),
    ],
)
async def test_a_card_number_sent_as_a_name_is_not_repeated_by_the_refusal(
    platform: Platform, merchant: Credentials, content: bytes, content_type: str
) -> None:
    async with platform.client(merchant) as client:
        response = await client.post("/v1/customers", content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    assert "4242" not in response.text
    assert "[REDACTED PAN]" in response.json()["error"]["param"]
