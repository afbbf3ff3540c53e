"""Braintree's webhook notifications, verified by the package's own `webhook_notification.parse`:
transactions settled or declined, refunds, disputes; tampered, wrongly signed, replayed, stale,
unreadable. And disputes accepted through the package."""

import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode

import braintree
import pytest

from bastion.kernel.errors import AuthenticationFailed, InvalidRequest
from bastion.kernel.ids import new_id
from bastion.payments.braintree import NOTIFICATION_AGE_MAX_S
from bastion.payments.connectors import Answer, AttemptResult, DisputeState, Notification, Subject
from bastion.payments.errors import DisputeRefused
from tests.connectors.braintree.conftest import Case
from tests.support.providers.braintree import Transaction, signed_notification

FORM = {"content-type": "application/x-www-form-urlencoded"}


async def _captured(case: Case) -> tuple[str, Transaction]:
    """A charge of 10.00 USD captured at Braintree: its id and its sale."""
    request = await case.authorization(amount=1_000)
    await case.connector.authorize(case.tenant, request)
    [sale] = case.sales(request.charge_id)
    return request.charge_id, sale


def _told(case: Case, body: bytes) -> Notification:
    return case.connector.handle_notification(body, FORM, now=int(time.time()))


def _form(body: bytes) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(body.decode()).items()}


async def test_a_settled_sale_and_its_replay(case: Case) -> None:
    charge, sale = await _captured(case)
    body = case.gateway.notification(case.account, "transaction_settled", sale.id)

    told = _told(case, body)
    replayed = case.connector.handle_notification(body, FORM, now=int(time.time()) + 3600)
    later = _told(
        case, case.gateway.notification(case.account, "transaction_settled", sale.id, at=datetime.now(UTC) + timedelta(seconds=2))
    )

    assert told == replayed
    assert told == Notification(
        id=told.id,
        type="transaction_settled",
        merchant_id=case.merchant.merchant_id,
        livemode=False,
        subject=Subject.PAYMENT,
        reference=charge,
        answer=Answer(AttemptResult.CAPTURED, reference=sale.id),
        amount=1_000,
        currency="USD",
    )
    assert told.id.startswith("btn_")
    assert later.id != told.id


async def test_refunds_and_declined_settlements(case: Case) -> None:
    charge, sale = await _captured(case)
    refund = new_id("re")
    await case.connector.refund(case.tenant, refund, sale.id, 400)
    [credit] = case.credits(refund)

    settled = _told(case, case.gateway.notification(case.account, "transaction_settled", credit.id))
    case.gateway.transactions[credit.id].status = "processor_declined"
    failed = _told(case, case.gateway.notification(case.account, "refund_failed", credit.id))
    case.gateway.transactions[sale.id].status = "settlement_declined"
    declined = _told(case, case.gateway.notification(case.account, "transaction_settlement_declined", sale.id))

    assert (settled.subject, settled.reference, settled.answer, settled.amount) == (
        Subject.REFUND,
        refund,
        Answer(AttemptResult.REFUNDED, reference=credit.id),
        400,
    )
    assert (failed.subject, failed.reference, failed.answer and failed.answer.result) == (
        Subject.REFUND,
        refund,
        AttemptResult.FAILED,
    )
    assert (declined.subject, declined.reference, declined.answer and declined.answer.result) == (
        Subject.PAYMENT,
        charge,
        AttemptResult.DECLINED,
    )


@pytest.mark.parametrize(
    ("kind", "closed", "status"),
    [
        ("dispute_opened", None, "needs_response"),
        ("dispute_under_review", "under_review", "under_review"),
        ("dispute_won", "won", "won"),
        ("dispute_lost", "lost", "lost"),
        ("dispute_accepted", "accepted", "lost"),
        ("dispute_expired", "expired", "lost"),
    ],
)
async def test_disputes(case: Case, *, kind: str, closed: str | None, status: str) -> None:
    charge, sale = await _captured(case)
    dispute = case.gateway.open_dispute(sale.id, reason="product_not_received")
    due_on = dispute.reply_by_date if closed is None else dispute.received_date
    assert due_on is not None
    if closed is not None:
        case.gateway.close_dispute(dispute.id, closed)

    told = _told(case, case.gateway.notification(case.account, kind, dispute.id))

    assert (told.subject, told.reference, told.amount, told.currency, told.answer) == (
        Subject.DISPUTE,
        charge,
        1_000,
        "USD",
        None,
    )
    assert told.dispute == DisputeState(
        reference=dispute.id,
        status=status,
        amount=1_000,
        currency="USD",
        reason="product_not_received",
        evidence_due_by=int(datetime(due_on.year, due_on.month, due_on.day, tzinfo=UTC).timestamp()),
    )


async def test_a_retrieval_asks_for_information_only(case: Case) -> None:
    _charge, sale = await _captured(case)
    dispute = case.gateway.open_dispute(sale.id, kind="retrieval", reason="retrieval")
    told = _told(case, case.gateway.notification(case.account, "dispute_opened", dispute.id))
    assert told.dispute is not None
    assert (told.dispute.status, told.dispute.reason) == ("warning_needs_response", "general")


async def test_notifications_that_do_not_verify(case: Case) -> None:
    _charge, sale = await _captured(case)
    body = case.gateway.notification(case.account, "transaction_settled", sale.id)
    form = _form(body)
    now = datetime.now(UTC)
    refused = {
        "tampered": urlencode({**form, "bt_payload": "AAAA" + form["bt_payload"][4:]}).encode(),
        "signed with another private key": case.gateway.notification(
            case.account, "transaction_settled", sale.id, private_key="x" * 32
        ),
        "signed for another public key": case.gateway.notification(case.gateway.merchant(), "transaction_settled", sale.id),
        "unsigned": urlencode({"bt_payload": form["bt_payload"]}).encode(),
        "signed twice": body + b"&" + urlencode({"bt_signature": form["bt_signature"]}).encode(),
        "signed too long ago": case.gateway.notification(
            case.account, "transaction_settled", sale.id, at=now - timedelta(seconds=NOTIFICATION_AGE_MAX_S + 60)
        ),
        "signed in the future": case.gateway.notification(
            case.account, "transaction_settled", sale.id, at=now + timedelta(hours=1)
        ),
    }
    for name, refused_body in refused.items():
        try:
            _told(case, refused_body)
        except AuthenticationFailed:
            continue
        pytest.fail(f"{name}: accepted")
    a_day_ago = case.gateway.notification(case.account, "transaction_settled", sale.id, at=now - timedelta(hours=24))
    assert _told(case, a_day_ago).type == "transaction_settled"


def _signed(case: Case, xml: str) -> bytes:
    return signed_notification(xml, case.account.public_key, case.account.private_key)


async def test_notifications_bastion_cannot_read(case: Case) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    stamped = f'<notification><timestamp type="datetime">{now}</timestamp>'
    unreadable = [
        b"\xff\xfe",
        urlencode({"bt_signature": "a|b"}).encode(),
        _signed(case, "<notification><kind>"),
        _signed(case, f'{stamped}<kind>check</kind><subject><check type="boolean">true</check></subject></notification>'),
        # A sale Bastion did not make: no order id.
        _signed(
            case,
            f"{stamped}<kind>transaction_settled</kind><subject><transaction><id>abc</id><status>settled</status>"
            '<type>sale</type><amount>1.00</amount><currency-iso-code>USD</currency-iso-code><order-id nil="true"/>'
            "</transaction></subject></notification>",
        ),
        _signed(
            case,
            "<notification><kind>transaction_settled</kind><subject><transaction><id>a</id><amount>1</amount></transaction></subject></notification>",
        ),
    ]
    for body in unreadable:
        with pytest.raises(InvalidRequest) as refusal:
            _told(case, body)
        assert refusal.value.param == "bt_payload"


async def test_the_packages_own_sample_notifications_verify(case: Case) -> None:
    """The local gateway signs as the package's `webhook_testing` does: the package's own sample
    passes the signature check (and is then refused as naming no Bastion id)."""
    packages = braintree.BraintreeGateway(
        braintree.Configuration(
            braintree.Environment.Sandbox,
            merchant_id=case.account.merchant_id,
            public_key=case.account.public_key,
            private_key=case.account.private_key,
        )
    )
    sample = packages.webhook_testing.sample_notification("dispute_opened", "dp1234")
    with pytest.raises(InvalidRequest, match="order_id"):
        _told(case, urlencode(sample).encode())


async def test_accepting_a_dispute(case: Case) -> None:
    _charge, sale = await _captured(case)
    dispute = case.gateway.open_dispute(sale.id)

    accepted = await case.connector.accept_dispute(case.tenant, dispute.id, key="k1")
    again = await case.connector.accept_dispute(case.tenant, dispute.id, key="k1")

    assert accepted == again
    assert (accepted.reference, accepted.status, accepted.amount, accepted.reason) == (dispute.id, "lost", 1_000, "fraudulent")
    assert case.gateway.disputes[dispute.id].status == "accepted"
    with pytest.raises(DisputeRefused):
        await case.connector.accept_dispute(case.tenant, "nosuchdispute", key="k2")
    with pytest.raises(DisputeRefused):
        await case.connector.respond_to_dispute(
            case.tenant, dispute.id, key="k3", evidence={"product_description": "a"}, submit=True
        )
