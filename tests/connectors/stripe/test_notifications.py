"""Stripe's webhooks as the local Stripe records and signs them, read by the connector: verified by
the package's own verifier (bad, missing, other secret, stale), the same event twice the same
Notification, and each kind of object in Bastion's terms."""

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.kernel.errors import AuthenticationFailed, InvalidRequest
from bastion.kernel.ids import new_id
from bastion.payments.connectors import Answer, AttemptResult, DisputeState, Notification, Subject
from bastion.payments.stripe import NOTIFICATION_TOLERANCE_S, SIGNATURE_HEADER
from tests.connectors.conftest import LocalStripe
from tests.connectors.stripe.conftest import Opened, authorization, authorized, paid, stripe_account
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.providers.stripe import signature_header
from tests.support.vault import CHALLENGED, vault_card

# Every status Stripe's PaymentIntents have, and what Bastion makes of each alone.
_STATUSES = {
    "requires_capture": AttemptResult.AUTHORIZED,
    "succeeded": AttemptResult.CAPTURED,
    "canceled": AttemptResult.VOIDED,
    "requires_payment_method": AttemptResult.UNKNOWN,
    "requires_confirmation": AttemptResult.UNKNOWN,
    "requires_action": AttemptResult.UNKNOWN,
    "processing": AttemptResult.UNKNOWN,
}


def _signed(
    stripe: Opened, event: dict[str, Any], *, timestamp: int | None = None, secret: str | None = None
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    header = signature_header(body, secret or stripe.account.credentials["webhook_secret"], timestamp=timestamp)
    return body, {SIGNATURE_HEADER: header}


def _told(stripe: Opened, body: bytes, headers: dict[str, str]) -> Notification:
    return stripe.connector.handle_notification(body, headers, now=int(time.time()))


def _last(stripe: Opened, event_type: str) -> dict[str, Any]:
    return next(event for event in reversed(stripe.record.events) if event["type"] == event_type)


async def test_an_authorization_told_by_stripe(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, answer = await authorized(stripe, platform, vault, merchant, capture=False)
    event = _last(stripe, "payment_intent.amount_capturable_updated")

    told = _told(stripe, *_signed(stripe, event))

    assert told == Notification(
        id=event["id"],
        type="payment_intent.amount_capturable_updated",
        merchant_id=merchant.merchant_id,
        livemode=False,
        subject=Subject.PAYMENT,
        reference=request.charge_id,
        answer=Answer(AttemptResult.AUTHORIZED, reference=answer.reference),
        amount=2000,
        currency="EUR",
    )


@pytest.mark.parametrize(
    ("number", "decline_code"), [(CHALLENGED, "authentication_failed"), ("4000000000009995", "insufficient_funds")]
)
async def test_a_decline_told_by_stripe(
    *, stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials, number: str, decline_code: str
) -> None:
    request = authorization(await vault_card(platform, vault, merchant, number=number), return_url="https://shop.example/7")
    answer = await stripe.connector.authorize(stripe.tenant, request)
    if answer.result == AttemptResult.REQUIRES_ACTION:
        assert answer.reference is not None
        # The cardholder fails the challenge in the browser: Stripe tells Bastion.
        stripe.local.server.complete_challenge(stripe.account.credentials["secret_key"], answer.reference, succeeded=False)

    told = _told(stripe, *_signed(stripe, _last(stripe, "payment_intent.payment_failed")))

    assert told.reference == request.charge_id
    assert told.answer is not None
    assert (told.answer.result, told.answer.decline_code, told.answer.failover) == (AttemptResult.DECLINED, decline_code, False)


async def test_a_refund_and_a_dispute_told_by_stripe(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    reference = await paid(stripe, platform, vault, merchant)
    refund_id = new_id("re")
    await stripe.connector.refund(stripe.tenant, refund_id, reference, 300)
    dispute = stripe.local.server.open_dispute(stripe.account.credentials["secret_key"], reference)

    refunded = _told(stripe, *_signed(stripe, _last(stripe, "refund.created")))
    disputed = _told(stripe, *_signed(stripe, _last(stripe, "charge.dispute.created")))

    assert (refunded.subject, refunded.reference, refunded.amount, refunded.currency) == (Subject.REFUND, refund_id, 300, "EUR")
    assert refunded.answer is not None
    assert refunded.answer.result == AttemptResult.REFUNDED
    # A dispute names the PaymentIntent, which Bastion holds as the charge's connector reference.
    assert (disputed.subject, disputed.reference, disputed.answer) == (Subject.DISPUTE, reference, None)
    assert disputed.dispute == DisputeState(
        reference=dispute["id"],
        status="needs_response",
        amount=2000,
        currency="EUR",
        reason="fraudulent",
        evidence_due_by=dispute["evidence_details"]["due_by"],
    )


async def test_the_same_event_twice_is_the_same_notification(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    await paid(stripe, platform, vault, merchant)
    body, headers = _signed(stripe, _last(stripe, "payment_intent.succeeded"))

    assert _told(stripe, body, headers) == _told(stripe, body, headers)


async def test_only_a_fresh_signature_of_the_body_under_the_accounts_secret_is_taken(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    await paid(stripe, platform, vault, merchant)
    event = _last(stripe, "payment_intent.succeeded")
    body, headers = _signed(stripe, event)
    now = int(time.time())

    refused = {
        "tampered": (body.replace(b'"amount": 2000', b'"amount": 1'), headers),
        "other secret": _signed(stripe, event, secret="whsec_" + "0" * 32),
        "stale": _signed(stripe, event, timestamp=now - NOTIFICATION_TOLERANCE_S - 5),
        "no header": (body, {}),
        "no signature": (body, {SIGNATURE_HEADER: f"t={now}"}),
        "not ours": (body, {SIGNATURE_HEADER: "garbage"}),
    }
    outcomes = {}
    for why, (sent, sent_headers) in refused.items():
        try:
            _told(stripe, sent, sent_headers)
        except AuthenticationFailed:
            outcomes[why] = "refused"
        else:
            outcomes[why] = "taken"
    assert outcomes == dict.fromkeys(refused, "refused")
    # Within the tolerance, and with the header's name in any case.
    recent, recent_headers = _signed(stripe, event, timestamp=now - NOTIFICATION_TOLERANCE_S + 30)
    assert _told(stripe, recent, {name.lower(): value for name, value in recent_headers.items()}).id == event["id"]


async def test_a_signed_body_bastion_cannot_read_names_its_field(stripe: Opened) -> None:
    without_amount = {key: value for key, value in _intent("succeeded").items() if key != "amount"}
    event = stripe.local.server.event(stripe.record, "payment_intent.succeeded", without_amount)

    with pytest.raises(InvalidRequest) as missing:
        _told(stripe, *_signed(stripe, event))
    unknown_type = event | {"type": "customer.created"}
    with pytest.raises(InvalidRequest) as unsupported:
        _told(stripe, *_signed(stripe, unknown_type | {"data": {"object": _intent("succeeded")}}))
    with pytest.raises(InvalidRequest) as other_mode:
        _told(stripe, *_signed(stripe, event | {"livemode": True, "data": {"object": _intent("succeeded")}}))
    body = b"not json"
    with pytest.raises(InvalidRequest) as not_json:
        _told(stripe, body, {SIGNATURE_HEADER: signature_header(body, stripe.account.credentials["webhook_secret"])})

    assert missing.value.param == "data.object.amount"
    assert unsupported.value.param == "type"
    assert other_mode.value.param == "livemode"
    assert not_json.value.param == "body"


async def test_a_payment_intent_bastion_did_not_make_changes_nothing(stripe: Opened) -> None:
    intent = _intent("succeeded") | {"metadata": {}}

    told = _told(stripe, *_signed(stripe, stripe.local.server.event(stripe.record, "payment_intent.succeeded", intent)))

    assert (told.reference, told.answer) == (intent["id"], None)


async def test_any_status_is_a_known_result_or_unknown(stripe: Opened) -> None:
    @settings(max_examples=300, deadline=None)
    @given(status=st.one_of(st.sampled_from(sorted(_STATUSES)), st.text(max_size=120)))
    def read(status: str) -> None:
        event = stripe.local.server.event(stripe.record, "payment_intent.processing", _intent(status))

        told = _told(stripe, *_signed(stripe, event))

        assert told.answer is not None
        assert told.answer.result == _STATUSES.get(status, AttemptResult.UNKNOWN)
        assert told.answer.failover is False

    read()


def _intent(status: str) -> dict[str, Any]:
    return {
        "object": "payment_intent",
        "id": "pi_" + new_id("ch")[3:],
        "status": status,
        "amount": 2000,
        "amount_received": 0,
        "currency": "eur",
        "metadata": {"bastion_charge": new_id("ch")},
        "next_action": None,
        "last_payment_error": None,
    }


async def test_an_account_reads_only_its_own_secrets_signatures(
    stripe: Opened, platform: Platform, merchant: Credentials, local_stripe: LocalStripe
) -> None:
    other = stripe_account(merchant, local_stripe.url)
    event = stripe.local.server.event(stripe.record, "payment_intent.succeeded", _intent("succeeded"))

    with pytest.raises(AuthenticationFailed):
        _told(stripe, *_signed(stripe, event, secret=other.credentials["webhook_secret"]))
