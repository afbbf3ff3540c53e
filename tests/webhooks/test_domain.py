"""Which event types an endpoint's `enabled_events` patterns select."""

import pytest

from bastion.webhooks.domain import subscribed


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
