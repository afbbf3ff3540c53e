"""Money: exact minor units, ISO 4217 exponents, bounds, no silent rounding."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.kernel.errors import InvalidRequest
from bastion.kernel.money import AMOUNT_MINOR_MAX, CURRENCIES, AmountOutOfRange, CurrencyMismatch, Money, exponent

amounts = st.integers(min_value=-AMOUNT_MINOR_MAX, max_value=AMOUNT_MINOR_MAX)
currencies = st.sampled_from(sorted(CURRENCIES))


def test_exponents_follow_iso_4217() -> None:
    assert (exponent("JPY"), exponent("EUR"), exponent("KWD"), exponent("CLF")) == (0, 2, 3, 4)
    for code in ("XAU", "XXX", "XDR", "EURO", "eur", ""):
        with pytest.raises(InvalidRequest) as raised:
            exponent(code)
        assert raised.value.param == "currency"


@given(amounts, currencies)
def test_decimal_round_trip_is_exact(amount_minor: int, currency: str) -> None:
    money = Money(amount_minor, currency)
    assert Money.from_decimal(money.to_decimal(), currency) == money
    assert Money.from_decimal(str(money).split()[0], currency) == money


def test_from_decimal_refuses_to_round() -> None:
    assert Money.from_decimal("10.50", "EUR") == Money(1050, "EUR")
    assert Money.from_decimal("1050", "JPY") == Money(1050, "JPY")
    assert Money.from_decimal("1.005", "KWD") == Money(1005, "KWD")
    for value, currency in (("10.505", "EUR"), ("0.5", "JPY"), ("NaN", "EUR"), ("Infinity", "EUR"), ("ten", "EUR")):
        with pytest.raises(InvalidRequest) as raised:
            Money.from_decimal(value, currency)
        assert raised.value.param == "amount"


@given(amounts, amounts, currencies)
def test_addition_is_exact_or_refused(a: int, b: int, currency: str) -> None:
    if abs(a + b) > AMOUNT_MINOR_MAX:
        with pytest.raises(AmountOutOfRange):
            Money(a, currency) + Money(b, currency)
    else:
        assert (Money(a, currency) + Money(b, currency)).amount_minor == a + b
        assert (Money(a, currency) - Money(-b, currency)).amount_minor == a + b


def test_currencies_never_mix_and_bounds_hold() -> None:
    with pytest.raises(CurrencyMismatch):
        Money(1, "EUR") + Money(1, "USD")
    with pytest.raises(AmountOutOfRange):
        Money(AMOUNT_MINOR_MAX + 1, "EUR")
    with pytest.raises(InvalidRequest):
        Money(True, "EUR")  # type: ignore[arg-type]  # the runtime check is what is tested
    with pytest.raises(InvalidRequest):
        Money(10.5, "EUR")  # type: ignore[arg-type]
    assert str(Money(-1050, "EUR")) == "-10.50 EUR"
    assert str(Money(5, "KWD")) == "0.005 KWD"
    assert Money(1050, "EUR").to_decimal() == Decimal("10.50")
