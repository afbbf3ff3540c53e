"""How Braintree's answers map to Bastion's, read by the package into its own `Transaction`:
every status, processor response code and rejection reason (fuzzed) maps to a result without
failing, anything unmapped is `unknown`, and only what the error table allows fails over."""

from decimal import Decimal

import braintree
from hypothesis import given
from hypothesis import strategies as st

from bastion.payments.braintree import (
    FAILOVER_DECLINES,
    PROCESSOR_DECLINES,
    REFUND_RESULTS,
    SALE_RESULTS,
    charge_answer,
    major_units,
    refund_answer,
    transaction_answer,
)
from bastion.payments.connectors import AttemptResult

_STATUSES = st.one_of(st.sampled_from(sorted({*SALE_RESULTS, *REFUND_RESULTS, "authorizing"})), st.text(max_size=40))
_CODES = st.one_of(st.sampled_from(sorted(PROCESSOR_DECLINES)), st.text(max_size=6))
_AMOUNTS = st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=3)


def _transaction(status: str, *, amount: str = "10.00", code: str = "1000", reason: str | None = None) -> object:
    return braintree.Transaction(
        None,
        {
            "id": "abc12345",
            "status": status,
            "type": "sale",
            "amount": amount,
            "currency_iso_code": "USD",
            "processor_response_code": code,
            "processor_response_text": "text",
            "gateway_rejection_reason": reason,
        },
    )


@given(status=_STATUSES, code=_CODES, reason=st.one_of(st.none(), st.text(max_size=20)), amount=_AMOUNTS)
def test_any_sale_maps_to_a_result(status: str, code: str, reason: str | None, amount: Decimal) -> None:
    answer = transaction_answer(_transaction(status, amount=str(amount), code=code, reason=reason), amount=1_000, currency="USD")
    if status not in SALE_RESULTS or amount != Decimal("10.00"):
        assert answer.result == AttemptResult.UNKNOWN
    if answer.result == AttemptResult.UNKNOWN:
        assert not answer.failover
    if answer.failover:
        assert answer.result == AttemptResult.FAILED or answer.decline_code in FAILOVER_DECLINES
    assert answer.decline_code != "fraudulent" or not answer.failover


@given(status=_STATUSES, amount=_AMOUNTS)
def test_any_credit_maps_to_a_result(status: str, amount: Decimal) -> None:
    answer = refund_answer(_transaction(status, amount=str(amount)), amount=1_000)
    if status not in REFUND_RESULTS or amount != Decimal("10.00"):
        assert answer.result == AttemptResult.UNKNOWN
    assert not answer.failover


def test_each_processor_code_and_the_rest_of_its_class() -> None:
    for code, decline_code in PROCESSOR_DECLINES.items():
        answer = transaction_answer(_transaction("processor_declined", code=code), amount=1_000, currency="USD")
        assert (answer.result, answer.decline_code, answer.failover) == (
            AttemptResult.DECLINED,
            decline_code,
            decline_code in FAILOVER_DECLINES,
        )
    unlisted = transaction_answer(_transaction("processor_declined", code="2101"), amount=1_000, currency="USD")
    network = transaction_answer(_transaction("failed", code="3001"), amount=1_000, currency="USD")
    assert (unlisted.decline_code, unlisted.failover) == ("generic_decline", False)
    assert (network.result, network.decline_code, network.failover) == (AttemptResult.FAILED, "try_again_later", True)


def test_one_charge_with_two_standing_sales_is_unknown() -> None:
    """Two sales Braintree holds for one charge: a double charge for the operator, never a result."""
    declined = _transaction("processor_declined", code="2000")
    assert charge_answer([declined, _transaction("authorized")], amount=1_000, currency="USD").result == AttemptResult.AUTHORIZED
    assert charge_answer([_transaction("authorized"), _transaction("settled")], amount=1_000, currency="USD").result == (
        AttemptResult.UNKNOWN
    )
    assert charge_answer([declined], amount=1_000, currency="USD").decline_code == "do_not_honor"


def test_major_units_follow_iso_4217() -> None:
    assert [major_units(1_050, "USD"), major_units(1_000, "JPY"), major_units(1_234, "KWD"), major_units(5, "EUR")] == [
        "10.50",
        "1000",
        "1.234",
        "0.05",
    ]
