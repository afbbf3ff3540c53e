"""Deliveries' signatures in each scheme, verified by the official libraries (`standardwebhooks`,
and Stripe's `stripe.Webhook.construct_event`): each secret of an endpoint in rotation verifies
alone, and any change to a header or a byte of the body is refused, as are stale timestamps."""

import base64
import time
from datetime import UTC, datetime

import pytest
import stripe
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from bastion.webhooks.domain import new_secret
from bastion.webhooks.signing import signature_headers

BODY = b'{"id":"evt_01M00000000000000000000000","type":"charge.succeeded","data":{"object":{"amount":2950}}}'
MESSAGE_ID = "evt_01M00000000000000000000000"
# One for the property test's many examples, made when the tests run.
SECRET = new_secret()


def _now() -> int:
    return int(time.time())


def test_each_secret_of_a_rotation_verifies_the_delivery() -> None:
    old, new = new_secret(), new_secret()
    headers = signature_headers("standard_webhooks", MESSAGE_ID, _now(), BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (new, old):
        assert Webhook(secret).verify(BODY, headers) == {
            "id": MESSAGE_ID,
            "type": "charge.succeeded",
            "data": {"object": {"amount": 2950}},
        }
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)


def test_the_signature_is_the_specifications() -> None:
    secret, timestamp = new_secret(), _now()
    expected = Webhook(secret).sign(MESSAGE_ID, datetime.fromtimestamp(timestamp, UTC), BODY)
    assert signature_headers("standard_webhooks", MESSAGE_ID, timestamp, BODY, [secret])["webhook-signature"] == expected


def _flipped(signature: str) -> str:
    """The signature with one bit of its MAC changed, whatever the MAC was."""
    scheme, _, encoded = signature.partition(",")
    mac = bytearray(base64.b64decode(encoded))
    mac[0] ^= 1
    return f"{scheme},{base64.b64encode(mac).decode()}"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_changed_header_is_refused(header: str) -> None:
    secret = new_secret()
    headers = signature_headers("standard_webhooks", MESSAGE_ID, _now(), BODY, [secret])
    changed = {
        "webhook-id": "evt_01M00000000000000000000001",
        "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1),
        "webhook-signature": _flipped(headers["webhook-signature"]),
    }[header]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers | {header: changed})


@given(st.integers(min_value=0, max_value=len(BODY) - 1), st.integers(min_value=1, max_value=255))
def test_a_changed_byte_of_the_body_is_refused(position: int, flip: int) -> None:
    headers = signature_headers("standard_webhooks", MESSAGE_ID, _now(), BODY, [SECRET])
    tampered = bytearray(BODY)
    tampered[position] ^= flip
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(bytes(tampered), headers, json_parse=False)


def test_an_old_timestamp_is_refused_by_receivers() -> None:
    secret = new_secret()
    headers = signature_headers("standard_webhooks", MESSAGE_ID, _now() - 3_600, BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)


# --- Stripe's scheme ---


def _stripe_header(timestamp_s: int, secrets: list[str]) -> str:
    return signature_headers("stripe", MESSAGE_ID, timestamp_s, BODY, secrets)["Stripe-Signature"]


def test_the_stripe_signature_is_the_one_stripes_library_computes() -> None:
    secret, timestamp = new_secret(), _now()
    expected = stripe.WebhookSignature.generate_signature_header(BODY.decode(), secret, timestamp)
    assert signature_headers("stripe", MESSAGE_ID, timestamp, BODY, [secret]) == {"Stripe-Signature": expected}


def test_each_secret_of_a_rotation_verifies_with_stripes_library() -> None:
    old, new = new_secret(), new_secret()
    header = _stripe_header(_now(), [new, old])
    assert header.count(",v1=") == 2
    for secret in (new, old):
        event = stripe.Webhook.construct_event(BODY, header, secret)
        assert (event.id, event.type, event.data.object.amount) == (MESSAGE_ID, "charge.succeeded", 2950)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(BODY, header, new_secret())


def test_a_changed_stripe_signature_or_timestamp_is_refused() -> None:
    timestamp = _now()
    header = _stripe_header(timestamp, [SECRET])
    signature = header.rpartition("v1=")[2]
    digit = "0" if signature[0] != "0" else "1"
    for changed in (header.replace(signature, digit + signature[1:]), header.replace(f"t={timestamp}", f"t={timestamp - 1}")):
        with pytest.raises(stripe.SignatureVerificationError, match="No signatures found matching"):
            stripe.Webhook.construct_event(BODY, changed, SECRET)


# Flips that keep the body ASCII, so that it still decodes as the library requires.
@given(st.integers(min_value=0, max_value=len(BODY) - 1), st.integers(min_value=1, max_value=127))
def test_a_changed_byte_of_the_body_is_refused_by_stripes_library(position: int, flip: int) -> None:
    header = _stripe_header(_now(), [SECRET])
    tampered = bytearray(BODY)
    tampered[position] ^= flip
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(bytes(tampered), header, SECRET)


def test_stripes_library_refuses_a_timestamp_older_than_its_default_tolerance() -> None:
    secret, tolerance_s = new_secret(), stripe.Webhook.DEFAULT_TOLERANCE
    assert tolerance_s == 300
    stripe.Webhook.construct_event(BODY, _stripe_header(_now() - tolerance_s + 30, [secret]), secret)
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        stripe.Webhook.construct_event(BODY, _stripe_header(_now() - tolerance_s - 1, [secret]), secret)
