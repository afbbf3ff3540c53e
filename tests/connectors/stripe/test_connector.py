"""The Stripe connector against the local Stripe, with the session's real vault and real cards:
each flow, each decline, 3-D Secure, Stripe's failures, and no double charge in Stripe's record."""

import dataclasses
import logging
import secrets
from datetime import timedelta
from typing import Any

import pytest

from bastion.kernel.errors import ProcessorUnavailable
from bastion.kernel.ids import new_id
from bastion.payments.connectors import Answer, AttemptResult
from bastion.payments.errors import DisputeRefused
from bastion.payments.outbound import ProcessorClients
from bastion.payments.stripe import SEARCH_LAG_MAX, StripeConnector
from bastion.platform.certs import CertPaths, client_ssl_context
from bastion.platform.vault_client import VaultClient
from tests.connectors.stripe.conftest import (
    TIMEOUT_S,
    Opened,
    authorization,
    authorized,
    closed_port,
    paid,
    stripe_account,
)
from tests.support.clock import ShiftedClock
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.providers.stripe import Chaos
from tests.support.vault import CHALLENGED, VISA, vault_card

RETURN_URL = "https://shop.example/orders/7"


async def test_an_automatic_capture_is_one_payment_intent_named_by_the_charge(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, answer = await authorized(stripe, platform, vault, merchant)

    assert answer.result == AttemptResult.CAPTURED
    (intent,) = stripe.record.payment_intents.values()
    assert answer.reference == intent["id"]
    assert (intent["amount"], intent["currency"], intent["amount_received"]) == (2000, "eur", 2000)
    assert intent["metadata"] == {"bastion_charge": request.charge_id}
    assert intent["payment_method_options"] == {"card": {"request_three_d_secure": "automatic"}}
    assert list(stripe.record.cards.values()) == [VISA]


async def test_a_manual_capture_takes_part_of_theauthorization(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, answer = await authorized(stripe, platform, vault, merchant, capture=False)
    assert answer.result == AttemptResult.AUTHORIZED
    assert answer.reference is not None

    captured = await stripe.connector.capture(stripe.tenant, request.charge_id, answer.reference, 1500)

    assert captured == Answer(AttemptResult.CAPTURED, reference=answer.reference)
    intent = stripe.record.payment_intents[answer.reference]
    assert (intent["status"], intent["amount_received"], intent["amount_capturable"]) == ("succeeded", 1500, 0)


async def test_a_capture_asked_again_captures_once(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, answer = await authorized(stripe, platform, vault, merchant, capture=False)
    assert answer.reference is not None
    stripe.local.server.arm(Chaos.SLOW, path=f"/v1/payment_intents/{answer.reference}/capture", delay_s=TIMEOUT_S + 1)

    with pytest.raises(ProcessorUnavailable):
        await stripe.connector.capture(stripe.tenant, request.charge_id, answer.reference, 2000)
    again = await stripe.connector.capture(stripe.tenant, request.charge_id, answer.reference, 2000)

    assert again.result == AttemptResult.CAPTURED
    captures = [event for event in stripe.record.events if event["type"] == "payment_intent.succeeded"]
    assert len(captures) == 1


async def test_a_void_cancels_the_payment_intent(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, answer = await authorized(stripe, platform, vault, merchant, capture=False)
    assert answer.reference is not None

    voided = await stripe.connector.void(stripe.tenant, request.charge_id, answer.reference)

    assert voided == Answer(AttemptResult.VOIDED, reference=answer.reference)
    assert stripe.record.payment_intents[answer.reference]["status"] == "canceled"
    refused = await stripe.connector.capture(stripe.tenant, request.charge_id, answer.reference, 2000)
    assert refused.result == AttemptResult.FAILED
    assert "payment_intent_unexpected_state" in str(refused.message)


async def test_refunds_in_several_parts_up_to_the_amount_captured(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    reference = await paid(stripe, platform, vault, merchant)
    first, second, third = new_id("re"), new_id("re"), new_id("re")

    assert (await stripe.connector.refund(stripe.tenant, first, reference, 500)).result == AttemptResult.REFUNDED
    assert (await stripe.connector.refund(stripe.tenant, first, reference, 500)).result == AttemptResult.REFUNDED
    assert (await stripe.connector.refund(stripe.tenant, second, reference, 1000)).result == AttemptResult.REFUNDED
    too_much = await stripe.connector.refund(stripe.tenant, third, reference, 600)

    assert too_much.result == AttemptResult.FAILED
    refunds = {refund["metadata"]["bastion_refund"]: refund["amount"] for refund in stripe.record.refunds.values()}
    assert refunds == {first: 500, second: 1000}
    assert (await stripe.connector.sync_refund(stripe.tenant, second, reference, 1000)).result == AttemptResult.REFUNDED
    assert (await stripe.connector.sync_refund(stripe.tenant, third, reference, 600)).result == AttemptResult.FAILED


async def test_a_pending_refund_is_unknown_until_it_settles(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    reference = await paid(stripe, platform, vault, merchant)
    refund_id = new_id("re")
    stripe.local.server.arm(Chaos.STATUS, path="/v1/refunds", status="pending")

    assert (await stripe.connector.refund(stripe.tenant, refund_id, reference, 700)).result == AttemptResult.UNKNOWN
    assert (await stripe.connector.sync_refund(stripe.tenant, refund_id, reference, 700)).result == AttemptResult.UNKNOWN
    (refund,) = stripe.record.refunds.values()
    refund["status"] = "succeeded"
    assert (await stripe.connector.sync_refund(stripe.tenant, refund_id, reference, 700)).result == AttemptResult.REFUNDED


async def test_the_same_authorization_twice_is_one_payment(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, first = await authorized(stripe, platform, vault, merchant)

    second = await stripe.connector.authorize(stripe.tenant, request)

    assert second == first
    assert len(stripe.record.payment_intents) == 1
    assert len(stripe.record.payment_methods) == 1


@pytest.mark.parametrize(
    ("number", "decline_code", "failover"),
    [
        ("4000000000000002", "generic_decline", False),
        ("4000000000009995", "insufficient_funds", False),
        ("4000000000009987", "lost_card", False),
        ("4000000000009979", "stolen_card", False),
        ("4000000000000069", "expired_card", False),
        ("4000000000000127", "incorrect_cvc", False),
        ("4000000000000119", "processing_error", True),
    ],
)
async def test_each_declining_card(
    *,
    stripe: Opened,
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    number: str,
    decline_code: str,
    failover: bool,
) -> None:
    request = authorization(await vault_card(platform, vault, merchant, number=number))

    answer = await stripe.connector.authorize(stripe.tenant, request)

    assert (answer.result, answer.decline_code, answer.failover) == (AttemptResult.DECLINED, decline_code, failover)
    (intent,) = stripe.record.payment_intents.values()
    assert answer.reference == intent["id"]
    synced = await stripe.connector.sync(stripe.tenant, request.charge_id, amount=2000, currency="EUR")
    assert (synced.result, synced.decline_code) == (AttemptResult.DECLINED, decline_code)


async def test_a_challenge_asked_by_the_issuer_then_answered(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request = authorization(await vault_card(platform, vault, merchant, number=CHALLENGED), capture=False, return_url=RETURN_URL)

    answer = await stripe.connector.authorize(stripe.tenant, request)

    assert answer.result == AttemptResult.REQUIRES_ACTION
    assert answer.reference is not None
    assert answer.redirect_url == f"{stripe.local.url}/3ds/{answer.reference}"
    secret_key = stripe.account.credentials["secret_key"]
    stripe.local.server.complete_challenge(secret_key, answer.reference, succeeded=True)
    synced = await stripe.connector.sync(stripe.tenant, request.charge_id, amount=2000, currency="EUR")
    assert synced == Answer(AttemptResult.AUTHORIZED, reference=answer.reference)


async def test_a_challenge_bastion_asks_for_and_the_cardholder_fails(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, answer = await authorized(stripe, platform, vault, merchant, return_url=RETURN_URL, three_d_secure_required=True)

    assert answer.result == AttemptResult.REQUIRES_ACTION
    assert answer.reference is not None
    intent = stripe.record.payment_intents[answer.reference]
    assert intent["payment_method_options"] == {"card": {"request_three_d_secure": "challenge"}}
    stripe.local.server.complete_challenge(stripe.account.credentials["secret_key"], answer.reference, succeeded=False)
    synced = await stripe.connector.sync(stripe.tenant, request.charge_id, amount=2000, currency="EUR")
    assert (synced.result, synced.decline_code, synced.failover) == (AttemptResult.DECLINED, "authentication_failed", False)


async def test_a_challenge_without_a_page_to_send_the_cardholder_to_is_unknown(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    _, answer = await authorized(stripe, platform, vault, merchant, three_d_secure_required=True)

    assert answer.result == AttemptResult.UNKNOWN


async def test_a_status_bastion_does_not_know_is_unknown(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    stripe.local.server.arm(Chaos.STATUS, path="/v1/payment_intents", status="requires_quantum_entanglement")

    _, answer = await authorized(stripe, platform, vault, merchant)

    assert (answer.result, answer.failover) == (AttemptResult.UNKNOWN, False)
    assert answer.reference is not None


@pytest.mark.parametrize("chaos", [Chaos.SLOW, Chaos.DROP, Chaos.SERVER_ERROR])
async def test_no_answer_to_the_payment_intent_is_unknown_and_a_sync_finds_it(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials, chaos: Chaos
) -> None:
    stripe.local.server.arm(chaos, path="/v1/payment_intents", delay_s=TIMEOUT_S + 1)

    request, answer = await authorized(stripe, platform, vault, merchant)

    assert (answer.result, answer.failover) == (AttemptResult.UNKNOWN, False)
    (intent,) = stripe.record.payment_intents.values()
    synced = await stripe.connector.sync(stripe.tenant, request.charge_id, amount=2000, currency="EUR")
    assert synced == Answer(AttemptResult.CAPTURED, reference=intent["id"])
    # Asked again with the same key, Stripe answers what it answered first: a 500 too.
    again = await stripe.connector.authorize(stripe.tenant, request)
    assert again.result == (AttemptResult.UNKNOWN if chaos == Chaos.SERVER_ERROR else AttemptResult.CAPTURED)
    assert len(stripe.record.payment_intents) == 1


async def test_stripe_unavailable_is_unknown_and_rate_limited_may_go_elsewhere(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    stripe.local.server.arm(Chaos.REFUSED, path="/v1/payment_intents", status=503)
    _, unavailable = await authorized(stripe, platform, vault, merchant)
    stripe.local.server.arm(Chaos.REFUSED, path="/v1/payment_intents", status=429)
    _, limited = await authorized(stripe, platform, vault, merchant)

    assert (unavailable.result, unavailable.failover) == (AttemptResult.UNKNOWN, False)
    assert (limited.result, limited.failover) == (AttemptResult.FAILED, True)
    assert stripe.record.payment_intents == {}


@pytest.mark.parametrize("chaos", [Chaos.SERVER_ERROR, Chaos.DROP])
async def test_a_failure_before_the_payment_intent_charged_nothing_and_may_go_elsewhere(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials, chaos: Chaos
) -> None:
    stripe.local.server.arm(chaos, path="/v1/payment_methods")

    _, answer = await authorized(stripe, platform, vault, merchant)

    assert (answer.result, answer.failover) == (AttemptResult.FAILED, True)
    assert stripe.record.payment_intents == {}


async def test_a_refused_connection_sent_nothing(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials, stripe_outbound: ProcessorClients
) -> None:
    card = await vault_card(platform, vault, merchant)
    with stripe.local.stopped():
        through_the_vault = await stripe.connector.authorize(stripe.tenant, authorization(card))
    unreachable = stripe_account(merchant, f"http://127.0.0.1:{closed_port()}")
    connector = StripeConnector(unreachable, platform.services.vault, stripe_outbound)
    direct = await connector.authorize(stripe.tenant, authorization(card))
    with pytest.raises(ProcessorUnavailable):
        await connector.capture(stripe.tenant, new_id("ch"), "pi_123", 100)

    assert (through_the_vault.result, through_the_vault.failover) == (AttemptResult.FAILED, True)
    assert (direct.result, direct.failover) == (AttemptResult.FAILED, True)
    assert stripe.local.server.account(unreachable.credentials["secret_key"]).payment_intents == {}


async def test_a_wrong_key_charges_nothing_and_may_go_elsewhere(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials, stripe_outbound: ProcessorClients
) -> None:
    wrong_key = stripe.account.credentials | {"secret_key": "rk_test_" + secrets.token_hex(8)}
    connector = StripeConnector(
        dataclasses.replace(stripe.account, credentials=wrong_key), platform.services.vault, stripe_outbound
    )
    answer = await connector.authorize(stripe.tenant, authorization(await vault_card(platform, vault, merchant)))

    assert (answer.result, answer.failover) == (AttemptResult.FAILED, True)


async def test_a_sync_finding_nothing_waits_for_stripes_search_before_it_says_failed(
    stripe: Opened, platform: Platform, stripe_outbound: ProcessorClients
) -> None:
    clock = ShiftedClock()
    connector = StripeConnector(stripe.account, platform.services.vault, stripe_outbound, clock=clock)
    charge_id = new_id("ch")
    young = await connector.sync(stripe.tenant, charge_id, amount=2000, currency="EUR")
    with clock.shifted(SEARCH_LAG_MAX + timedelta(seconds=1)):
        old = await connector.sync(stripe.tenant, charge_id, amount=2000, currency="EUR")

    assert young.result == AttemptResult.UNKNOWN
    assert (old.result, old.failover) == (AttemptResult.FAILED, False)


async def test_a_payment_intent_stripes_search_does_not_show_yet_is_unknown(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, _ = await authorized(stripe, platform, vault, merchant)
    stripe.local.server.search_lag_s = 60
    try:
        synced = await stripe.connector.sync(stripe.tenant, request.charge_id, amount=2000, currency="EUR")
    finally:
        stripe.local.server.search_lag_s = 0

    assert synced.result == AttemptResult.UNKNOWN


async def test_another_amount_or_currency_than_asked_is_unknown(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    request, answer = await authorized(stripe, platform, vault, merchant)

    other_amount = await stripe.connector.sync(stripe.tenant, request.charge_id, amount=2001, currency="EUR")
    other_currency = await stripe.connector.sync(stripe.tenant, request.charge_id, amount=2000, currency="USD")

    assert (
        other_amount
        == other_currency
        == Answer(AttemptResult.UNKNOWN, reference=answer.reference, message="Stripe answered another amount or currency.")
    )


@pytest.mark.parametrize(("currency", "amount", "at_stripe"), [("JPY", 500, 500), ("ISK", 1000, 100_000), ("KWD", 1250, 1250)])
async def test_amounts_in_stripes_unit(
    *, stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials, currency: str, amount: int, at_stripe: int
) -> None:
    _, answer = await authorized(stripe, platform, vault, merchant, amount=amount, currency=currency, capture=False)

    assert answer.result == AttemptResult.AUTHORIZED
    (intent,) = stripe.record.payment_intents.values()
    assert (intent["amount"], intent["currency"]) == (at_stripe, currency.lower())


async def test_disputes_answered_and_accepted_through_stripe(
    stripe: Opened, platform: Platform, vault: ApiProcess, merchant: Credentials
) -> None:
    reference = await paid(stripe, platform, vault, merchant)
    secret_key = stripe.account.credentials["secret_key"]
    dispute = stripe.local.server.open_dispute(secret_key, reference)

    reviewed = await stripe.connector.respond_to_dispute(
        stripe.tenant, dispute["id"], key=f"{new_id('dp')}:evidence:1", evidence={"uncategorized_text": "receipt"}, submit=True
    )
    other = stripe.local.server.open_dispute(secret_key, reference)
    lost = await stripe.connector.accept_dispute(stripe.tenant, other["id"], key=f"{new_id('dp')}:accept")

    assert (reviewed.reference, reviewed.status, reviewed.amount, reviewed.currency) == (
        dispute["id"],
        "under_review",
        2000,
        "EUR",
    )
    assert stripe.record.disputes[dispute["id"]]["evidence"]["uncategorized_text"] == "receipt"
    assert (lost.reference, lost.status) == (other["id"], "lost")
    with pytest.raises(DisputeRefused):
        await stripe.connector.accept_dispute(stripe.tenant, other["id"], key=f"{new_id('dp')}:accept")


class _RecordingVault(VaultClient):
    """The API's client of the vault, keeping what each forward brought back."""

    answers: list[dict[str, Any]]

    async def forward(
        self, tenant: Any, *, card: str, connector: str, request: dict[str, Any], answer: dict[str, str] | None = None
    ) -> dict[str, Any]:
        forwarded = await super().forward(tenant, card=card, connector=connector, request=request, answer=answer)
        self.answers.append(forwarded)
        return forwarded


async def test_the_card_number_reaches_stripe_and_never_the_connector(
    *,
    stripe: Opened,
    platform: Platform,
    vault: ApiProcess,
    merchant: Credentials,
    stripe_outbound: ProcessorClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = platform.settings
    recording = _RecordingVault(
        settings.vault_internal_url,
        client_ssl_context(CertPaths.under(settings.data_dir)),
        timeout_s=settings.vault_forward_timeout_s,
    )
    recording.answers = []
    connector = StripeConnector(stripe.account, recording, stripe_outbound)
    card = await vault_card(platform, vault, merchant)
    try:
        answers = [await connector.authorize(stripe.tenant, authorization(card, capture=False)) for _ in range(2)]
        reference = answers[0].reference
        assert reference is not None
        answers.append(await connector.capture(stripe.tenant, new_id("ch"), reference, 2000))
        answers.append(await connector.refund(stripe.tenant, new_id("re"), reference, 100))
    finally:
        await recording.close()

    sent = [received.body for received in stripe.record.received if received.path == "/v1/payment_methods"]
    assert len(sent) == 2
    assert all(f"card[number]={VISA}" in body for body in sent)
    to_intents = [received.body for received in stripe.record.received if received.path.startswith("/v1/payment_intents")]
    assert all(VISA not in body for body in to_intents)
    seen_here = repr(answers) + repr(recording.answers) + caplog.text + repr([record.__dict__ for record in caplog.records])
    assert VISA not in seen_here
    assert stripe.account.credentials["secret_key"] not in caplog.text
