"""The Adyen connector against a local Adyen that checks every request against Adyen's published
description: card data only through the session's real vault, Adyen's answers in Bastion's terms,
its record the judge of "no double charge"."""

import json
from typing import Any

import pytest
from structlog.testing import capture_logs

from bastion.kernel.errors import ProcessorUnavailable
from bastion.kernel.ids import new_id
from bastion.payments.adyen import AdyenConnector
from bastion.payments.connectors import Answer, AttemptResult, Authorization
from tests.connectors.adyen.conftest import RETURN_URL, TIMEOUT_S, Payer
from tests.connectors.conftest import ServedAdyen
from tests.support.providers.adyen import body_of
from tests.support.vault import CHALLENGED, VISA


async def test_an_authorization_with_capture_is_captured_and_the_card_reaches_adyen_alone(
    connector: AdyenConnector, pay: Payer, adyen: ServedAdyen
) -> None:
    with capture_logs() as logs:
        request, answer = await pay()

    assert answer.result == AttemptResult.CAPTURED, answer
    (payment,) = adyen.server.payments_for(request.charge_id)
    assert answer.reference == f"{payment.psp_reference}:EUR"
    assert (payment.value, payment.currency, payment.manual_capture, payment.captured) == (1000, "EUR", False, 1000)
    sent = json.loads(adyen.server.received[-1])
    assert sent["paymentMethod"]["number"] == VISA
    assert sent["reference"] == request.charge_id
    assert "cvc" not in sent["paymentMethod"]
    assert VISA not in repr(answer)
    assert VISA not in repr(logs)


async def test_a_manual_capture_is_authorized_then_captured_in_part(
    connector: AdyenConnector, pay: Payer, adyen: ServedAdyen
) -> None:
    request, answer = await pay(capture=False)
    assert answer.result == AttemptResult.AUTHORIZED
    assert answer.reference is not None

    captured = await connector.capture(pay.tenant, request.charge_id, answer.reference, 600)

    assert captured.result == AttemptResult.CAPTURED
    (payment,) = adyen.server.payments_for(request.charge_id)
    assert (payment.manual_capture, payment.captured) == (True, 600)
    capture = adyen.server.notifications_for(request.charge_id)[-1]["notificationItems"][0]["NotificationRequestItem"]
    assert (capture["eventCode"], capture["success"], capture["amount"]["value"]) == ("CAPTURE", "true", 600)


async def test_a_void_cancels_the_authorization(connector: AdyenConnector, pay: Payer, adyen: ServedAdyen) -> None:
    request, answer = await pay(capture=False)
    assert answer.reference is not None

    voided = await connector.void(pay.tenant, request.charge_id, answer.reference)

    assert voided.result == AttemptResult.VOIDED
    assert adyen.server.payments_for(request.charge_id)[0].cancelled


async def test_several_partial_refunds_each_reach_adyen_once(connector: AdyenConnector, pay: Payer, adyen: ServedAdyen) -> None:
    request, answer = await pay()
    assert answer.reference is not None
    first, second = new_id("re"), new_id("re")

    answers = [
        await connector.refund(pay.tenant, first, answer.reference, 300),
        await connector.refund(pay.tenant, second, answer.reference, 200),
        # Asked again (a command resumed): the same key, Adyen's first answer, no second refund.
        await connector.refund(pay.tenant, second, answer.reference, 200),
    ]

    assert [told.result for told in answers] == [AttemptResult.REFUNDED] * 3
    assert answers[1] == answers[2]
    assert adyen.server.payments_for(request.charge_id)[0].refunded == 500
    refunds = [adyen.server.notifications_for(refund) for refund in (first, second)]
    assert [len(told) for told in refunds] == [1, 1]


@pytest.mark.parametrize(
    ("number", "decline_code", "failover"),
    [
        ("4000000000000002", "generic_decline", False),
        ("4000000000009995", "insufficient_funds", False),
        ("4000000000009987", "lost_card", False),
        ("4000000000000069", "expired_card", False),
        ("4000000000000127", "incorrect_cvc", False),
        # Adyen's "Acquirer Error": nothing authorized, another processor may be tried.
        ("4000000000000119", "processing_error", True),
    ],
)
async def test_each_test_card_is_declined_with_its_code(
    pay: Payer,
    number: str,
    decline_code: str,
    failover: bool,
) -> None:
    _, answer = await pay(number=number)

    assert (answer.result, answer.decline_code, answer.failover) == (AttemptResult.DECLINED, decline_code, failover)
    assert answer.message


async def test_the_issuers_challenge_is_a_redirect_and_its_outcome_a_notification(
    connector: AdyenConnector, pay: Payer, adyen: ServedAdyen
) -> None:
    request, answer = await pay(number=CHALLENGED, capture=False)

    assert answer.result == AttemptResult.REQUIRES_ACTION
    assert answer.redirect_url is not None
    assert answer.redirect_url.startswith(f"{adyen.server.base_url}/threeDS/redirect")
    sent = json.loads(adyen.server.received[-1])
    assert sent["returnUrl"] == RETURN_URL
    (payment,) = adyen.server.payments_for(request.charge_id)

    told = connector.handle_notification(
        body_of(adyen.server.complete_challenge(payment.psp_reference, authenticated=True)), {}, now=0
    )

    assert told.reference == request.charge_id
    assert told.answer == Answer(AttemptResult.AUTHORIZED, answer.reference)


async def test_the_risk_engine_asks_for_a_challenge_on_any_card(
    connector: AdyenConnector, pay: Payer, adyen: ServedAdyen
) -> None:
    _, answer = await pay(three_d_secure_required=True)

    assert answer.result == AttemptResult.REQUIRES_ACTION
    sent = json.loads(adyen.server.received[-1])
    assert sent["authenticationData"]["attemptAuthentication"] == "always"
    assert sent["threeDS2RequestData"] == {"threeDSRequestorChallengeInd": "04"}


async def test_without_a_return_url_no_challenge_is_attempted(connector: AdyenConnector, pay: Payer, adyen: ServedAdyen) -> None:
    _, answer = await pay(number=CHALLENGED, return_url=None)

    assert (answer.result, answer.decline_code) == (AttemptResult.DECLINED, "authentication_required")
    assert json.loads(adyen.server.received[-1])["authenticationData"]["attemptAuthentication"] == "never"


async def test_the_same_authorization_twice_is_one_payment(connector: AdyenConnector, pay: Payer, adyen: ServedAdyen) -> None:
    request, first = await pay()

    again = await connector.authorize(pay.tenant, request)

    assert again == first
    assert len(adyen.server.payments_for(request.charge_id)) == 1


async def test_the_same_capture_twice_is_one_capture(connector: AdyenConnector, pay: Payer, adyen: ServedAdyen) -> None:
    request, answer = await pay(capture=False)
    assert answer.reference is not None

    for _ in range(2):
        assert (await connector.capture(pay.tenant, request.charge_id, answer.reference, 1000)).result == AttemptResult.CAPTURED

    assert adyen.server.payments_for(request.charge_id)[0].captured == 1000
    assert [
        document["notificationItems"][0]["NotificationRequestItem"]["eventCode"]
        for document in adyen.server.notifications_for(request.charge_id)
    ] == ["AUTHORISATION", "CAPTURE"]


async def test_sync_cannot_ask_adyen_and_waits_for_its_notification(connector: AdyenConnector, pay: Payer) -> None:
    assert (await connector.sync(pay.tenant, new_id("ch"), amount=1000, currency="EUR")).result == AttemptResult.UNKNOWN
    assert (await connector.sync_refund(pay.tenant, new_id("re"), "PSPREFERENCE0001:EUR", 100)).result == AttemptResult.UNKNOWN


@pytest.mark.parametrize(
    ("status", "result", "failover"),
    [(500, AttemptResult.FAILED, True), (503, AttemptResult.FAILED, True), (502, AttemptResult.UNKNOWN, False)],
)
async def test_a_server_error_fails_over_only_where_adyen_did_not_process(
    pay: Payer,
    adyen: ServedAdyen,
    status: int,
    result: AttemptResult,
    failover: bool,
) -> None:
    adyen.server.chaos.status = status
    request, answer = await pay()

    assert (answer.result, answer.failover) == (result, failover)
    assert adyen.server.payments_for(request.charge_id) == []


async def test_a_dropped_answer_is_unknown_and_never_fails_over(
    connector: AdyenConnector, pay: Payer, adyen: ServedAdyen
) -> None:
    adyen.server.chaos.drop = True
    request, answer = await pay()

    assert (answer.result, answer.failover) == (AttemptResult.UNKNOWN, False)
    # Adyen did charge: its AUTHORISATION notification settles the attempt.
    assert len(adyen.server.payments_for(request.charge_id)) == 1


@pytest.mark.slow
async def test_an_answer_later_than_the_vaults_deadline_is_unknown(
    connector: AdyenConnector, pay: Payer, adyen: ServedAdyen
) -> None:
    # The session's vault waits BASTION_VAULT_FORWARD_TIMEOUT_MS (10 s) for a processor.
    adyen.server.chaos.delay_s = 11
    _, answer = await pay()

    assert (answer.result, answer.failover) == (AttemptResult.UNKNOWN, False)


async def test_an_unknown_result_code_is_unknown(connector: AdyenConnector, pay: Payer, adyen: ServedAdyen) -> None:
    adyen.server.chaos.result_code = "SettledYesterday"
    _, answer = await pay()

    assert (answer.result, answer.failover) == (AttemptResult.UNKNOWN, False)


async def test_a_refused_connection_sent_nothing_and_fails_over(
    connector: AdyenConnector, pay: Payer, adyen: ServedAdyen
) -> None:
    request = Authorization(new_id("ch"), await pay.card(), 1000, "EUR", capture=True, return_url=RETURN_URL)
    with adyen.stopped():
        answer = await connector.authorize(pay.tenant, request)
        with pytest.raises(ProcessorUnavailable):
            await connector.capture(pay.tenant, request.charge_id, "PSPREFERENCE0001:EUR", 1000)

    assert (answer.result, answer.failover) == (AttemptResult.FAILED, True)
    assert adyen.server.payments_for(request.charge_id) == []


@pytest.mark.parametrize("chaos", [{"status": 500}, {"status": 503}, {"drop": True}, {"delay_s": TIMEOUT_S + 1}])
async def test_a_modification_without_an_answer_is_asked_again(
    pay: Payer,
    adyen: ServedAdyen,
    chaos: dict[str, Any],
) -> None:
    request, answer = await pay(capture=False)
    assert answer.reference is not None
    for name, value in chaos.items():
        setattr(adyen.server.chaos, name, value)

    with pytest.raises(ProcessorUnavailable):
        await pay.connector.capture(pay.tenant, request.charge_id, answer.reference, 1000)
    # Asked again with the same key: captured once, whether the first arrived or not.
    again = await pay.connector.capture(pay.tenant, request.charge_id, answer.reference, 1000)

    assert again.result == AttemptResult.CAPTURED
    assert adyen.server.payments_for(request.charge_id)[0].captured == 1000


async def test_a_refusal_of_a_modification_is_failed(connector: AdyenConnector, pay: Payer, adyen: ServedAdyen) -> None:
    await pay()

    answer = await connector.capture(pay.tenant, new_id("ch"), "NOSUCHPAYMENT001:EUR", 1000)

    assert answer.result == AttemptResult.FAILED
    assert answer.message is not None
    assert "167" in answer.message


async def test_an_amount_adyen_counts_in_whole_units_must_be_whole(
    connector: AdyenConnector, pay: Payer, adyen: ServedAdyen
) -> None:
    sent = len(adyen.server.received)
    request, answer = await pay(amount=1050, currency="IDR")

    assert (answer.result, answer.decline_code) == (AttemptResult.FAILED, "invalid_amount")
    assert len(adyen.server.received) == sent

    request, answer = await pay(amount=1000, currency="IDR")
    assert answer.result == AttemptResult.CAPTURED
    assert adyen.server.payments_for(request.charge_id)[0].value == 10
