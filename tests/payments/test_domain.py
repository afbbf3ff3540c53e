"""The rules of payments as pure functions: which action each status allows (Stripe's table),
capture and refund amounts, and the fee with its rounding rule."""

import dataclasses
import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.connectors import Capabilities
from bastion.kernel.errors import InvalidRequest
from bastion.kernel.money import Money
from bastion.payments.domain import (
    FINAL_STATUSES,
    IntentAction,
    IntentStatus,
    Needs,
    Pricing,
    capture_amount,
    check_action,
    default_fixed_fee,
    refund_amount,
    unmet_need,
)
from bastion.payments.errors import AmountTooLarge, ChargeAlreadyRefunded, PaymentIntentUnexpectedState

S = IntentStatus
# Stripe's documented table, written out in full rather than derived from the code's; with
# docs/payments.md's one difference: no confirm while a 3-D Secure challenge is open.
ALLOWED = {
    IntentAction.UPDATE: {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE},
    IntentAction.CONFIRM: {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION},
    IntentAction.CAPTURE: {S.REQUIRES_CAPTURE},
    IntentAction.CANCEL: {S.REQUIRES_PAYMENT_METHOD, S.REQUIRES_CONFIRMATION, S.REQUIRES_ACTION, S.REQUIRES_CAPTURE},
}


@pytest.mark.parametrize("action", list(IntentAction))
@pytest.mark.parametrize("status", list(IntentStatus))
def test_each_action_is_allowed_in_its_statuses_only(action: IntentAction, status: IntentStatus) -> None:
    if status in ALLOWED[action]:
        check_action(action, status)
        return
    with pytest.raises(PaymentIntentUnexpectedState) as refused:
        check_action(action, status)
    assert f"has a status of {status}." in refused.value.message
    assert refused.value.code == "payment_intent_unexpected_state"


def test_a_final_intent_allows_nothing() -> None:
    assert {S.CANCELED, S.SUCCEEDED} == FINAL_STATUSES
    for action in IntentAction:
        assert not FINAL_STATUSES & ALLOWED[action]


def test_a_capture_takes_all_by_default_or_a_part() -> None:
    assert capture_amount(None, 1000) == 1000
    assert capture_amount(400, 1000) == 400
    assert capture_amount(1000, 1000) == 1000
    with pytest.raises(AmountTooLarge) as too_large:
        capture_amount(1001, 1000)
    assert too_large.value.param == "amount_to_capture"
    for nothing in (0, -1):
        with pytest.raises(InvalidRequest) as refused:
            capture_amount(nothing, 1000)
        assert (refused.value.code, refused.value.param) == ("parameter_invalid", "amount_to_capture")


@given(
    captured=st.integers(min_value=1, max_value=10**12),
    requests=st.lists(st.one_of(st.none(), st.integers(min_value=-5, max_value=10**12)), max_size=20),
)
def test_refunds_never_exceed_what_was_captured(captured: int, requests: list[int | None]) -> None:
    refunded = 0
    for requested in requests:
        try:
            refunded += refund_amount(requested, captured, refunded)
        except (AmountTooLarge, ChargeAlreadyRefunded, InvalidRequest):
            continue
        assert 0 < refunded <= captured
    if refunded == captured:
        with pytest.raises(ChargeAlreadyRefunded):
            refund_amount(None, captured, refunded)


def test_the_default_price_is_2_9_percent_and_30_cents_scaled_by_the_currency() -> None:
    assert (default_fixed_fee("EUR"), default_fixed_fee("JPY"), default_fixed_fee("KWD")) == (30, 0, 300)
    # 2.9 % of 10.00 EUR is 0.29, plus 0.30.
    assert Pricing.default("EUR").fee(Money(1000, "EUR")) == Money(59, "EUR")
    # 2.9 % of 1,000 JPY is 29; of 1.000 KWD 0.029 (29 fils), plus 300 fils.
    assert Pricing.default("JPY").fee(Money(1000, "JPY")) == Money(29, "JPY")
    assert Pricing.default("KWD").fee(Money(1000, "KWD")) == Money(329, "KWD")


def test_half_a_minor_unit_rounds_up_and_less_rounds_down() -> None:
    pricing = Pricing(basis_points=250, fixed_minor=0)
    assert pricing.fee(Money(20, "EUR")) == Money(1, "EUR")  # 0.5 -> 1
    assert pricing.fee(Money(19, "EUR")) == Money(0, "EUR")  # 0.475 -> 0
    assert pricing.fee(Money(60, "EUR")) == Money(2, "EUR")  # 1.5 -> 2


@given(
    amount=st.integers(min_value=1, max_value=10**15),
    basis_points=st.integers(min_value=0, max_value=10_000),
    fixed=st.integers(min_value=0, max_value=10_000),
)
def test_the_fee_is_the_share_rounded_half_up_and_never_above_the_amount(amount: int, basis_points: int, fixed: int) -> None:
    fee = Pricing(basis_points, fixed).fee(Money(amount, "USD")).amount_minor
    # The exact share as a fraction, rounded half up by floor(x + 1/2): no integer trick shared with the code.
    rounded = math.floor(Fraction(amount * basis_points, 10_000) + Fraction(1, 2))
    assert fee == min(rounded + fixed, amount)
    assert 0 <= fee <= amount


FULL = Capabilities(
    currencies=frozenset({"EUR", "USD"}),
    brands=frozenset({"visa"}),
    manual_capture=False,
    partial_capture=False,
    partial_refunds=True,
    multiple_refunds=True,
    three_d_secure=False,
    notifications=True,
)


@pytest.mark.parametrize(
    ("needs", "unmet"),
    [
        (Needs("EUR", "visa", manual_capture=False), None),
        (Needs("JPY", "visa", manual_capture=False), ("currency", "the currency JPY")),
        (Needs("EUR", "amex", manual_capture=False), ("payment_method", "amex cards")),
        (Needs("EUR", "visa", manual_capture=True), ("capture_method", "manual capture")),
    ],
)
def test_a_connector_lacking_what_a_payment_needs_names_the_field(needs: Needs, unmet: tuple[str, str] | None) -> None:
    assert unmet_need(FULL, needs) == unmet


def test_a_connector_of_every_currency_takes_any() -> None:
    every = dataclasses.replace(FULL, currencies=None)
    assert unmet_need(every, Needs("KWD", "visa", manual_capture=False)) is None
