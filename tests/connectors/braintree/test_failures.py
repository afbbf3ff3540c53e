"""The Braintree connector when Braintree fails: refusals, server errors, answers too late or
cut off, a port that refuses connections, answers it cannot map. Its error classification
(docs/connectors.md): what was not sent or not processed may fail over; anything that may have
reached Braintree is `unknown` and is settled by a sync, which finds the one sale a charge has;
flows without card data are asked again."""

from decimal import Decimal

import pytest

from bastion.kernel.errors import ProcessorUnavailable, ProcessorUnreachable
from bastion.kernel.ids import new_id
from bastion.payments.connectors import Answer, AttemptResult
from tests.connectors.braintree.conftest import Case
from tests.support.asgi import serving
from tests.support.postgres import free_port
from tests.support.providers.braintree import Merchant

# Past the session vault's forward timeout (BASTION_VAULT_FORWARD_TIMEOUT_MS, 10 s by default).
BEYOND_THE_FORWARD_S = 11.0
# Past the connector's own timeout in these tests (CONNECTOR_TIMEOUT_S).
BEYOND_THE_CONNECTOR_S = 2.5


@pytest.mark.parametrize(
    ("status", "result", "failover"),
    [
        # Braintree refused it before acting: another processor may be tried.
        (401, AttemptResult.FAILED, True),
        (403, AttemptResult.FAILED, True),
        (426, AttemptResult.FAILED, True),
        (429, AttemptResult.FAILED, True),
        (503, AttemptResult.FAILED, True),
        # Braintree failed: it may have charged, so nothing else is tried until a sync says.
        (500, AttemptResult.UNKNOWN, False),
        (504, AttemptResult.UNKNOWN, False),
        (408, AttemptResult.UNKNOWN, False),
        (302, AttemptResult.UNKNOWN, False),
    ],
)
async def test_the_sales_http_failures(case: Case, *, status: int, result: AttemptResult, failover: bool) -> None:
    request = await case.authorization()
    case.gateway.fail_next("sale", status=status)
    answer = await case.connector.authorize(case.tenant, request)
    assert (answer.result, answer.failover) == (result, failover)


async def test_a_look_that_fails_sends_no_sale(case: Case) -> None:
    request = await case.authorization()
    case.gateway.fail_next("search", status=500)
    answer = await case.connector.authorize(case.tenant, request)
    assert (answer.result, answer.failover) == (AttemptResult.FAILED, True)
    assert case.sales(request.charge_id) == []


@pytest.mark.slow
async def test_a_sale_answered_too_late_is_unknown_and_never_charged_twice(case: Case) -> None:
    request = await case.authorization(capture=False)
    case.gateway.fail_next("sale", delay_s=BEYOND_THE_FORWARD_S)
    late = await case.connector.authorize(case.tenant, request)
    assert (late.result, late.failover) == (AttemptResult.UNKNOWN, False)

    synced = await case.connector.sync(case.tenant, request.charge_id, amount=request.amount, currency="USD")
    resumed = await case.connector.authorize(case.tenant, request)

    [sale] = case.sales(request.charge_id)
    assert synced == resumed == Answer(AttemptResult.AUTHORIZED, reference=sale.id)


async def test_a_sale_whose_connection_drops_is_unknown_and_never_charged_twice(case: Case) -> None:
    request = await case.authorization()
    case.gateway.fail_next("sale", drop=True)
    dropped = await case.connector.authorize(case.tenant, request)
    resumed = await case.connector.authorize(case.tenant, request)

    [sale] = case.sales(request.charge_id)
    assert (dropped.result, dropped.failover) == (AttemptResult.UNKNOWN, False)
    assert resumed == Answer(AttemptResult.CAPTURED, reference=sale.id)


async def test_a_sale_to_a_port_that_refuses_is_not_sent_and_may_fail_over(case: Case) -> None:
    """The vault's Braintree refuses connections; the look reaches the same gateway elsewhere."""
    request = await case.authorization()
    with serving(case.gateway, name="braintree-elsewhere") as port:
        connector = case.connector_for(case.account, f"http://127.0.0.1:{port}")
        with case.local.stopped():
            answer = await connector.authorize(case.tenant, request)
    assert answer == Answer(AttemptResult.FAILED, message="The processor could not be reached; nothing was sent.", failover=True)
    assert case.sales(request.charge_id) == []


_REJECTED = "gateway_rejected"


@pytest.mark.parametrize(
    ("fields", "result", "decline_code", "failover"),
    [
        ({"status": _REJECTED, "gateway_rejection_reason": "fraud"}, AttemptResult.DECLINED, "fraudulent", False),
        ({"status": _REJECTED, "gateway_rejection_reason": "cvv"}, AttemptResult.DECLINED, "incorrect_cvc", False),
        ({"status": _REJECTED, "gateway_rejection_reason": "avs"}, AttemptResult.DECLINED, "incorrect_zip", False),
        (
            {"status": _REJECTED, "gateway_rejection_reason": "three_d_secure"},
            AttemptResult.DECLINED,
            "authentication_required",
            True,
        ),
        ({"status": _REJECTED, "gateway_rejection_reason": "something_new"}, AttemptResult.DECLINED, "generic_decline", False),
        # Perhaps this charge's own earlier sale: unknown until a sync says.
        ({"status": _REJECTED, "gateway_rejection_reason": "duplicate"}, AttemptResult.UNKNOWN, None, False),
        ({"status": "authorizing"}, AttemptResult.UNKNOWN, None, False),
        ({"status": "held_for_review"}, AttemptResult.UNKNOWN, None, False),
        ({"amount": Decimal("10.01")}, AttemptResult.UNKNOWN, None, False),
        ({"status": "settlement_declined"}, AttemptResult.DECLINED, "generic_decline", False),
        ({"status": "authorization_expired"}, AttemptResult.VOIDED, None, False),
    ],
)
async def test_what_braintree_may_answer_a_sale(
    case: Case, *, fields: dict[str, object], result: AttemptResult, decline_code: str | None, failover: bool
) -> None:
    request = await case.authorization(capture=False)
    case.gateway.fail_next("sale", fields=fields)
    answer = await case.connector.authorize(case.tenant, request)
    assert (answer.result, answer.decline_code, answer.failover) == (result, decline_code, failover)


async def test_a_sale_rejected_as_a_duplicate_is_settled_by_the_sync(case: Case) -> None:
    request = await case.authorization()
    case.gateway.fail_next("sale", fields={"status": _REJECTED, "gateway_rejection_reason": "duplicate"})
    rejected = await case.connector.authorize(case.tenant, request)
    synced = await case.connector.sync(case.tenant, request.charge_id, amount=request.amount, currency="USD")
    assert rejected.result == AttemptResult.UNKNOWN
    assert (synced.result, synced.decline_code) == (AttemptResult.DECLINED, "duplicate_transaction")


async def test_flows_without_card_data_are_asked_again_and_act_once(case: Case) -> None:
    request = await case.authorization(capture=False)
    reference = (await case.connector.authorize(case.tenant, request)).reference
    assert reference is not None

    # Refused or failed, then done but cut off: the last one captured.
    for fault in ({"status": 500}, {"status": 503}, {"status": 429}, {"drop": True}):
        case.gateway.fail_next("capture", **fault)
        with pytest.raises(ProcessorUnavailable):
            await case.connector.capture(case.tenant, request.charge_id, reference, 600)
    captured = await case.connector.capture(case.tenant, request.charge_id, reference, 600)
    refund = new_id("re")
    case.gateway.fail_next("refund", delay_s=BEYOND_THE_CONNECTOR_S)
    with pytest.raises(ProcessorUnavailable):
        await case.connector.refund(case.tenant, refund, reference, 100)
    refunded = await case.connector.refund(case.tenant, refund, reference, 100)

    [sale] = case.sales(request.charge_id)
    [credit] = case.credits(refund)
    assert captured == Answer(AttemptResult.CAPTURED, reference=reference)
    assert sale.amount == Decimal("6.00")
    assert [status for status, _at, _amount in sale.history] == ["authorized", "submitted_for_settlement", "settled"]
    assert refunded == Answer(AttemptResult.REFUNDED, reference=credit.id)
    case.gateway.fail_next("search", status=503)
    with pytest.raises(ProcessorUnavailable):
        await case.connector.sync(case.tenant, request.charge_id, amount=request.amount, currency="USD")


async def test_a_base_url_that_refuses_connections(case: Case) -> None:
    connector = case.connector_for(case.account, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ProcessorUnavailable) as unreachable:
        await connector.capture(case.tenant, new_id("ch"), "abcdefgh", 100)
    with pytest.raises(ProcessorUnavailable):
        await connector.sync(case.tenant, new_id("ch"), amount=100, currency="USD")
    assert unreachable.value.code == ProcessorUnreachable.code


async def test_keys_braintree_refuses(case: Case) -> None:
    wrong = Merchant(case.account.merchant_id, case.account.public_key, "0" * 32, case.account.currency)
    request = await case.authorization()
    connector = case.connector_for(wrong)
    authorized = await connector.authorize(case.tenant, request)
    captured = await connector.capture(case.tenant, request.charge_id, "abcdefgh", 100)
    with pytest.raises(ProcessorUnavailable):
        await connector.sync(case.tenant, request.charge_id, amount=100, currency="USD")
    assert (authorized.result, authorized.failover) == (AttemptResult.FAILED, True)
    assert (captured.result, captured.message) == (AttemptResult.FAILED, "Braintree refused the account's API keys (401).")
    assert case.sales(request.charge_id) == []


async def test_a_transaction_braintree_does_not_hold(case: Case) -> None:
    for answer in (
        await case.connector.capture(case.tenant, new_id("ch"), "nosuchid", 100),
        await case.connector.void(case.tenant, new_id("ch"), "nosuchid"),
        await case.connector.refund(case.tenant, new_id("re"), "nosuchid", 100),
        await case.connector.sync_refund(case.tenant, new_id("re"), "nosuchid", 100),
    ):
        assert (answer.result, answer.message) == (AttemptResult.FAILED, "Braintree has no such merchant or record (404).")


async def test_refunds_the_search_does_not_show_yet_are_asked_again(case: Case) -> None:
    """The transaction's record lists a credit Braintree's search does not return yet: the
    refund cannot tell whether it is that one, so it is asked again rather than sent."""
    request = await case.authorization()
    reference = (await case.connector.authorize(case.tenant, request)).reference
    assert reference is not None
    first = new_id("re")
    await case.connector.refund(case.tenant, first, reference, 100)
    [credit] = case.credits(first)
    hidden = case.gateway.transactions.pop(credit.id)

    second = new_id("re")
    with pytest.raises(ProcessorUnavailable):
        await case.connector.refund(case.tenant, second, reference, 100)
    with pytest.raises(ProcessorUnavailable):
        await case.connector.sync_refund(case.tenant, first, reference, 100)
    case.gateway.transactions[hidden.id] = hidden
    assert case.credits(second) == []
    assert (await case.connector.refund(case.tenant, second, reference, 100)).result == AttemptResult.REFUNDED
