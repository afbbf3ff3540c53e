"""Deliveries' signatures, verified by the official `standardwebhooks` package: each secret of
an endpoint in rotation verifies alone, and any change to a header or a byte of the body is
refused."""

import base64
import time
from datetime import UTC, datetime

import pytest
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
    headers = signature_headers(MESSAGE_ID, _now(), BODY, [new, old])
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
    assert signature_headers(MESSAGE_ID, timestamp, BODY, [secret])["webhook-signature"] == expected


def _flipped(signature: str) -> str:
    """The signature with one bit of its MAC changed, whatever the MAC was."""
    scheme, _, encoded = signature.partition(",")
    mac = bytearray(base64.b64decode(encoded))
    mac[0] ^= 1
    return f"{scheme},{base64.b64encode(mac).decode()}"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_changed_header_is_refused(header: str) -> None:
    secret = new_secret()
    headers = signature_headers(MESSAGE_ID, _now(), BODY, [secret])
    changed = {
        "webhook-id": "evt_01M00000000000000000000001",
        "webhook-timestamp": str(int(headers["webhook-timestamp"]) - 1),
        "webhook-signature": _flipped(headers["webhook-signature"]),
    }[header]
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers | {header: changed})


@given(st.integers(min_value=0, max_value=len(BODY) - 1), st.integers(min_value=1, max_value=255))
def test_a_changed_byte_of_the_body_is_refused(position: int, flip: int) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = signature_headers(MESSAGE_ID, _now(), BODY, [secret])
    tampered = bytearray(BODY)
    tampered[position] ^= flip
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(bytes(tampered), headers, json_parse=False)


def test_an_old_timestamp_is_refused_by_receivers() -> None:
    secret = new_secret()
    headers = signature_headers(MESSAGE_ID, _now() - 3_600, BODY, [secret])
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)
