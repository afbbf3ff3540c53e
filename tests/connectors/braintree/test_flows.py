"""The Braintree connector's flows against the local gateway, the sale's card data through the
session's vault: authorize with and without capture, capture (in part), void, refunds in parts,
syncs, every test card's decline, Braintree's sandbox amounts, currencies' exponents, 3-D Secure."""

import logging
from decimal import Decimal

import pytest

from bastion.kernel.ids import new_id
from bastion.payments.connectors import Answer, AttemptResult, Authorization
from tests.connectors.braintree.conftest import Case
from tests.support.providers.braintree import API_VERSION
from tests.support.vault import CHALLENGED, VISA


async def test_an_authorization_captured_at_once(case: Case) -> None:
    request = await case.authorization(amount=1_050)
    answer = await case.connector.authorize(case.tenant, request)

    [sale] = case.sales(request.charge_id)
    assert answer == Answer(AttemptResult.CAPTURED, reference=sale.id)
    assert (sale.amount, sale.currency, sale.status, sale.last_4) == (Decimal("10.50"), "USD", "settled", "4242")
    [forwarded] = [
        received for received in case.gateway.received if received.path == f"/merchants/{case.account.merchant_id}/transactions"
    ]
    assert (forwarded.headers["x-apiversion"], forwarded.headers["content-type"]) == (API_VERSION, "application/xml")


async def test_an_authorization_captured_later_in_part(case: Case) -> None:
    request = await case.authorization(amount=2_000, capture=False)
    authorized = await case.connector.authorize(case.tenant, request)
    assert authorized.result == AttemptResult.AUTHORIZED
    assert authorized.reference is not None

    captured = await case.connector.capture(case.tenant, request.charge_id, authorized.reference, 1_500)
    again = await case.connector.capture(case.tenant, request.charge_id, authorized.reference, 1_500)

    assert captured == again == Answer(AttemptResult.CAPTURED, reference=authorized.reference)
    [sale] = case.sales(request.charge_id)
    assert sale.amount == Decimal("15.00")
    assert [status for status, _at, _amount in sale.history] == ["authorized", "submitted_for_settlement", "settled"]


async def test_a_capture_beyond_the_authorization_or_of_a_void_is_refused(case: Case) -> None:
    request = await case.authorization(amount=1_000, capture=False)
    reference = (await case.connector.authorize(case.tenant, request)).reference
    assert reference is not None

    beyond = await case.connector.capture(case.tenant, request.charge_id, reference, 1_001)
    voided = await case.connector.void(case.tenant, request.charge_id, reference)
    after_void = await case.connector.capture(case.tenant, request.charge_id, reference, 1_000)

    assert (beyond.result, beyond.message) == (AttemptResult.FAILED, "Settlement amount is too large.")
    assert voided.result == AttemptResult.VOIDED
    assert (after_void.result, after_void.message) == (
        AttemptResult.FAILED,
        "Braintree cannot capture a transaction that is voided.",
    )


async def test_a_void_asked_twice(case: Case) -> None:
    request = await case.authorization(capture=False)
    reference = (await case.connector.authorize(case.tenant, request)).reference
    assert reference is not None

    voided = await case.connector.void(case.tenant, request.charge_id, reference)
    again = await case.connector.void(case.tenant, request.charge_id, reference)
    synced = await case.connector.sync(case.tenant, request.charge_id, amount=request.amount, currency="USD")

    assert voided == again == synced == Answer(AttemptResult.VOIDED, reference=reference)
    [sale] = case.sales(request.charge_id)
    assert [status for status, _at, _amount in sale.history] == ["authorized", "voided"]


async def test_refunds_in_parts_each_once(case: Case) -> None:
    request = await case.authorization(amount=1_000)
    reference = (await case.connector.authorize(case.tenant, request)).reference
    assert reference is not None
    first, second, third = new_id("re"), new_id("re"), new_id("re")

    refunded = await case.connector.refund(case.tenant, first, reference, 300)
    asked_again = await case.connector.refund(case.tenant, first, reference, 300)
    second_refund = await case.connector.refund(case.tenant, second, reference, 700)
    beyond = await case.connector.refund(case.tenant, third, reference, 1)

    [credit] = case.credits(first)
    assert refunded == asked_again == Answer(AttemptResult.REFUNDED, reference=credit.id)
    assert (credit.amount, credit.type) == (Decimal("3.00"), "credit")
    assert second_refund.result == AttemptResult.REFUNDED
    assert (beyond.result, beyond.message) == (AttemptResult.FAILED, "Transaction has already been completely refunded.")
    assert case.credits(third) == []
    assert await case.connector.sync_refund(case.tenant, first, reference, 300) == refunded
    assert (await case.connector.sync_refund(case.tenant, third, reference, 1)).result == AttemptResult.FAILED
    assert (await case.connector.sync_refund(case.tenant, second, reference, 699)).result == AttemptResult.UNKNOWN


async def test_braintree_refunds_only_what_has_settled(case: Case) -> None:
    unsettled = case.gateway.merchant(settle_at_once=False)
    connector = case.connector_for(unsettled)
    request = await case.authorization()
    reference = (await connector.authorize(case.tenant, request)).reference
    assert reference is not None
    refund = new_id("re")
    refused = await connector.refund(case.tenant, refund, reference, 500)
    case.gateway.settle(reference)
    refunded = await connector.refund(case.tenant, refund, reference, 500)
    assert (refused.result, refused.message) == (AttemptResult.FAILED, "Cannot refund transaction unless it is settled.")
    assert refunded.result == AttemptResult.REFUNDED


async def test_sync_tells_what_braintree_holds(case: Case) -> None:
    request = await case.authorization(amount=1_234, capture=False)
    authorized = await case.connector.authorize(case.tenant, request)

    assert await case.connector.sync(case.tenant, request.charge_id, amount=1_234, currency="USD") == authorized
    other_amount = await case.connector.sync(case.tenant, request.charge_id, amount=1_235, currency="USD")
    other_currency = await case.connector.sync(case.tenant, request.charge_id, amount=1_234, currency="EUR")
    never_sent = await case.connector.sync(case.tenant, new_id("ch"), amount=1_234, currency="USD")
    assert other_amount.result == other_currency.result == AttemptResult.UNKNOWN
    assert (never_sent.result, never_sent.failover) == (AttemptResult.FAILED, False)


@pytest.mark.parametrize(
    ("number", "decline_code", "failover"),
    [
        ("4000000000000002", "generic_decline", False),
        ("4000000000009995", "insufficient_funds", False),
        ("4000000000009987", "lost_card", False),
        ("4000000000000069", "expired_card", False),
        ("4000000000000127", "incorrect_cvc", False),
        ("4000000000000119", "processing_error", False),
        # The issuer asks for 3-D Secure, which Braintree runs in its client SDK only.
        (CHALLENGED, "authentication_required", True),
        ("4000000000003220", "authentication_required", True),
    ],
)
async def test_each_test_card_declines_as_documented(case: Case, *, number: str, decline_code: str, failover: bool) -> None:
    request = await case.authorization(number)
    answer = await case.connector.authorize(case.tenant, request)
    synced = await case.connector.sync(case.tenant, request.charge_id, amount=request.amount, currency="USD")
    assert (answer.result, answer.decline_code, answer.failover) == (AttemptResult.DECLINED, decline_code, failover)
    assert answer.reference is not None
    assert synced == answer


@pytest.mark.parametrize(
    ("amount", "result", "decline_code", "failover"),
    [
        # Braintree's sandbox declines 2000.00 to 2999.99 with that processor response code.
        (200_100, AttemptResult.DECLINED, "insufficient_funds", False),
        (201_400, AttemptResult.DECLINED, "fraudulent", False),
        (205_700, AttemptResult.DECLINED, "restricted_card", False),
        (209_900, AttemptResult.DECLINED, "authentication_required", True),
        (299_999, AttemptResult.DECLINED, "generic_decline", False),
        # ... and fails 3000.00 to 3000.99: the processor's network is down, nothing was charged.
        (300_000, AttemptResult.FAILED, "try_again_later", True),
    ],
)
async def test_braintrees_sandbox_amounts(
    case: Case, *, amount: int, result: AttemptResult, decline_code: str, failover: bool
) -> None:
    answer = await case.connector.authorize(case.tenant, await case.authorization(amount=amount))
    assert (answer.result, answer.decline_code, answer.failover) == (result, decline_code, failover)


@pytest.mark.parametrize(
    ("currency", "amount", "major", "captured_major"),
    [("JPY", 1_000, Decimal(1000), Decimal(999)), ("KWD", 1_234, Decimal("1.234"), Decimal("1.233"))],
)
async def test_amounts_in_the_currencys_own_exponent(
    case: Case, *, currency: str, amount: int, major: Decimal, captured_major: Decimal
) -> None:
    """Braintree takes the amount in major units: no decimals for JPY (it refuses any), three for KWD."""
    account = case.gateway.merchant(currency)
    connector = case.connector_for(account)
    request = await case.authorization(amount=amount, currency=currency, capture=False)
    answer = await connector.authorize(case.tenant, request)
    assert answer.reference is not None
    captured = await connector.capture(case.tenant, request.charge_id, answer.reference, amount - 1)
    [sale] = case.gateway.sales(account, request.charge_id)
    assert (answer.result, captured.result) == (AttemptResult.AUTHORIZED, AttemptResult.CAPTURED)
    assert (sale.history[0][2], sale.amount, sale.currency) == (major, captured_major, currency)


async def test_a_currency_other_than_the_merchant_accounts_is_unknown(case: Case) -> None:
    """Braintree charges in its merchant account's currency, whatever Bastion asked."""
    answer = await case.connector.authorize(case.tenant, await case.authorization(currency="EUR", capture=False))
    assert (answer.result, answer.message) == (AttemptResult.UNKNOWN, "Braintree answered another amount or currency.")


async def test_a_challenge_braintree_cannot_run_is_refused_before_anything_is_sent(case: Case) -> None:
    request = await case.authorization(three_d_secure_required=True)
    answer = await case.connector.authorize(case.tenant, request)
    assert (answer.result, answer.failover) == (AttemptResult.FAILED, True)
    assert case.sales(request.charge_id) == []
    assert case.connector.capabilities.three_d_secure is False


async def test_a_card_the_vault_does_not_hold_fails_unsent(case: Case) -> None:
    request = Authorization(new_id("ch"), "crd_00000000000000000000000000", 1_000, "USD", capture=True)
    answer = await case.connector.authorize(case.tenant, request)
    assert (answer.result, answer.failover) == (AttemptResult.FAILED, False)
    assert case.sales(request.charge_id) == []


async def test_no_card_number_reaches_the_connectors_process(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    """The gateway decides by the card (it was sent the number); the connector's answers and logs
    never carry it, nor do the answers it reads (their card numbers are masked by the vault)."""
    caplog.set_level(logging.DEBUG)
    request = await case.authorization("4000000000009995", capture=False)
    answers = [
        await case.connector.authorize(case.tenant, request),
        await case.connector.sync(case.tenant, request.charge_id, amount=request.amount, currency="USD"),
    ]
    [sale] = case.sales(request.charge_id)
    assert (sale.bin, sale.last_4, sale.processor_response[0]) == ("400000", "9995", "2001")
    for answer in answers:
        assert "4000000000009995" not in str(answer)
    assert "4000000000009995" not in caplog.text
    assert VISA not in caplog.text


async def test_a_lapsed_authorization_is_voided_already(case: Case) -> None:
    request = await case.authorization(capture=False)
    reference = (await case.connector.authorize(case.tenant, request)).reference
    assert reference is not None
    case.gateway.transactions[reference].moved("authorization_expired")
    voided = await case.connector.void(case.tenant, request.charge_id, reference)
    assert voided == Answer(AttemptResult.VOIDED, reference=reference)
    assert [status for status, _at, _amount in case.sales(request.charge_id)[0].history] == [
        "authorized",
        "authorization_expired",
    ]
