"""Which event types an endpoint's `enabled_events` patterns select, and which signing secrets
receivers can verify with."""

import base64

import pytest

from bastion.webhooks.domain import new_secret, secret_problem, subscribed


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (["*"], "payment_intent.succeeded", True),
        (["payment_intent.succeeded"], "payment_intent.succeeded", True),
        (["payment_intent.succeeded"], "payment_intent.canceled", False),
        (["payment_intent.*"], "payment_intent.canceled", True),
        (["payment_intent.*"], "payment_intentx.canceled", False),
        (["charge.*"], "charge.dispute.created", True),
        (["charge.dispute.*"], "charge.refunded", False),
        (["customer.created", "charge.*"], "charge.refunded", True),
        ([], "charge.refunded", False),
    ],
)
def test_patterns_select_event_types(patterns: list[str], event_type: str, expected: bool) -> None:
    assert subscribed(patterns, event_type) is expected


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (new_secret(), None),
        ("whsec_" + base64.b64encode(bytes(24)).decode(), None),
        ("whsec_" + base64.b64encode(bytes(64)).decode(), None),
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "a signing secret starts with 'whsec_'"),
        ("whsec_not base64!", "a signing secret is 'whsec_' and base64"),
        ("whsec_" + base64.b64encode(bytes(23)).decode(), "a signing secret holds 24 to 64 bytes, not 23"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "a signing secret holds 24 to 64 bytes, not 65"),
    ],
)
def test_secrets_receivers_can_verify_with(secret: str, problem: str | None) -> None:
    assert secret_problem(secret) == problem
