"""The payments service builds exactly the resources its routes document (ADR 11)."""

from datetime import UTC, datetime

from bastion.payments import service
from bastion.payments.resources import PaymentMethod, PaymentMethodList
from bastion.payments.routes import router
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
