"""The payments service builds exactly the resources its routes document (ADR 11)."""

from datetime import UTC, datetime

from bastion.payments import charges, intents, refunds, service
from bastion.payments.domain import declined_outcome
from bastion.payments.resources import (
    Charge,
    ChargeList,
    PaymentIntent,
    PaymentIntentList,
    PaymentMethod,
    PaymentMethodList,
    Refund,
    RefundList,
)
from bastion.payments.routes import charges_router, intents_router, refunds_router, router
from tests.support.resources import check_resource, documented_properties

ROW = {
    "id": "pm_0000000000000000000000000001",
    "merchant_id": "mer_0000000000000000000000000001",
    "livemode": False,
    "type": "card",
    "customer_id": "cus_0000000000000000000000000001",
    "card_brand": "visa",
    "card_last4": "4242",
    "card_exp_month": 12,
    "card_exp_year": 2034,
    "card_funding": "credit",
    "card_fingerprint": "fp_0123456789abcdef",
    "vault_card_id": "crd_0000000000000000000000000001",
    "signals": {"device": {"timezone": "Europe/Paris"}},
    "metadata": {"order": "42"},
    "created_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
}


def test_payment_method_resource() -> None:
    result = service.payment_method_resource(ROW)
    documented = documented_properties(router)
    check_resource(PaymentMethod, result, documented["PaymentMethod"])
    assert list(result["card"]) == documented["PaymentMethodCard"]
    # The vault's card id and the device signals stay on the server.
    assert ROW["vault_card_id"] not in str(result)
    assert "Europe/Paris" not in str(result)


def test_payment_method_list() -> None:
    result = service.payment_method_list([ROW], has_more=False)
    check_resource(PaymentMethodList, result, documented_properties(router)["PaymentMethodList"])
    assert result["data"] == [service.payment_method_resource(ROW)]
    assert (result["url"], result["has_more"]) == ("/v1/payment_methods", False)


MOMENT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
INTENT_ROW = {
    "id": "pi_0000000000000000000000000001",
    "merchant_id": "mer_0000000000000000000000000001",
    "livemode": False,
    "status": "requires_payment_method",
    "amount": 2000,
    "currency": "EUR",
    "capture_method": "automatic",
    "customer_id": None,
    "payment_method_id": "pm_0000000000000000000000000001",
    "amount_capturable": 0,
    "amount_received": 0,
    "latest_charge_id": "ch_0000000000000000000000000001",
    "connector_account_id": None,
    "last_payment_error": {
        "type": "card_error",
        "code": "card_declined",
        "decline_code": "insufficient_funds",
        "message": "Your card has insufficient funds.",
        "charge": "ch_0000000000000000000000000001",
        "payment_method": "pm_0000000000000000000000000001",
    },
    "next_action": None,
    "cancellation_reason": None,
    "description": "Order 42",
    "statement_descriptor": "ACME",
    "metadata": {},
    "command_in_flight": None,
    "canceled_at": None,
    "created_at": MOMENT,
    "updated_at": MOMENT,
}
CHARGE_ROW = {
    "id": "ch_0000000000000000000000000001",
    "merchant_id": "mer_0000000000000000000000000001",
    "livemode": False,
    "payment_intent_id": "pi_0000000000000000000000000001",
    "payment_method_id": "pm_0000000000000000000000000001",
    "status": "failed",
    "amount": 2000,
    "currency": "EUR",
    "captured": False,
    "amount_captured": 0,
    "amount_refunded": 0,
    "disputed": False,
    "outcome": declined_outcome("insufficient_funds"),
    "failure_code": "card_declined",
    "failure_message": "Your card has insufficient funds.",
    "decline_code": "insufficient_funds",
    "connector": "sandbox",
    "connector_account_id": None,
    "routing": {"attempt": 1, "reason": "sandbox"},
    "connector_reference": "acqp_0000000000000000000000000001",
    "authorization_entry_id": None,
    "fee": 0,
    "created_at": MOMENT,
    "updated_at": MOMENT,
}
REFUND_ROW = {
    "id": "re_0000000000000000000000000001",
    "merchant_id": "mer_0000000000000000000000000001",
    "livemode": False,
    "charge_id": "ch_0000000000000000000000000001",
    "payment_intent_id": "pi_0000000000000000000000000001",
    "amount": 500,
    "currency": "EUR",
    "status": "succeeded",
    "reason": "requested_by_customer",
    "failure_reason": None,
    "metadata": {},
    "created_at": MOMENT,
    "updated_at": MOMENT,
}


def test_payment_intent_resources() -> None:
    documented = documented_properties(intents_router)
    intent = intents.intent_resource(INTENT_ROW)
    check_resource(PaymentIntent, intent, documented["PaymentIntent"])
    assert list(intent["last_payment_error"] or {}) == documented["PaymentError"]
    listed = intents.intent_list([INTENT_ROW], has_more=True)
    check_resource(PaymentIntentList, listed, documented["PaymentIntentList"])
    # The server's bookkeeping of commands in flight stays on the server.
    assert "command_in_flight" not in intent


def test_charge_resources() -> None:
    documented = documented_properties(charges_router)
    charge = charges.charge_resource(CHARGE_ROW)
    check_resource(Charge, charge, documented["Charge"])
    assert list(charge["outcome"] or {}) == documented["ChargeOutcome"]
    assert (charge["paid"], charge["refunded"]) == (False, False)
    check_resource(ChargeList, charges.charge_list([CHARGE_ROW], has_more=False), documented["ChargeList"])


def test_refund_resources() -> None:
    documented = documented_properties(refunds_router)
    check_resource(Refund, refunds.refund_resource(REFUND_ROW), documented["Refund"])
    check_resource(RefundList, refunds.refund_list([REFUND_ROW], has_more=False), documented["RefundList"])
