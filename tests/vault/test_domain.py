"""The vault's card rules, without a vault: what a card number, expiry, CVC and name must
be, each refusal by its class and field, and what of a card may be shown. Only the
sandbox's test card numbers appear here."""

import re
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.platform.redaction import luhn_valid
from bastion.vault import errors
from bastion.vault.domain import (
    EXPIRY_YEARS_AHEAD_MAX,
    NAME_LENGTH_MAX,
    TEST_CARD_NUMBERS,
    Brand,
    CardDetails,
    brand_for,
    check_cvc,
    check_expiry,
    check_name,
    check_test_card,
    clean_number,
    looks_like_card_number,
    masked,
)

TODAY = date(2026, 12, 5)
_BRANDS = {
    "Visa": Brand.VISA,
    "Mastercard": Brand.MASTERCARD,
    "American Express": Brand.AMEX,
    "Discover": Brand.DISCOVER,
    "Diners Club": Brand.DINERS,
    "JCB": Brand.JCB,
    "UnionPay": Brand.UNIONPAY,
}


def _documented_test_cards() -> list[tuple[str, Brand, str]]:
    """The sandbox's test cards as docs/vault-fields.md lists them: number, brand, funding."""
    text = (Path(__file__).parents[2] / "docs" / "vault-fields.md").read_text()
    rows = re.findall(r"^\| ([0-9]{12,19}) \| ([A-Za-z ]+?)(?: \([^)]*\))? \| ([a-z]+) \|", text, re.MULTILINE)
    return [(number, _BRANDS[brand], funding) for number, brand, funding in rows]


TEST_CARDS = _documented_test_cards()


def test_the_documented_test_cards_are_the_ones_test_mode_takes() -> None:
    assert sorted(number for number, _, _ in TEST_CARDS) == sorted(TEST_CARD_NUMBERS)
    for number in TEST_CARD_NUMBERS:
        check_test_card(number, "card[number]")
    with pytest.raises(errors.LiveCardInTestMode) as refused:
        check_test_card("4111111111111111", "card[number]")
    assert refused.value.param == "card[number]"


def _check_digit(payload: str) -> str:
    """The Luhn digit that makes `payload` + it valid."""
    total = 0
    for index, char in enumerate(reversed(payload)):
        digit = int(char) * (2 if index % 2 == 0 else 1)
        total += digit - 9 if digit > 9 else digit
    return str((10 - total % 10) % 10)


@pytest.mark.parametrize(("number", "brand", "funding"), TEST_CARDS)
def test_the_sandbox_cards_are_known(number: str, brand: Brand, funding: str) -> None:
    assert clean_number(number, "card[number]") == number
    card = CardDetails(number=number, exp_month=12, exp_year=2030, cvc=None, name=None)
    assert (card.brand, card.funding, card.last4, card.bin) == (brand, funding, number[-4:], number[:6])
    assert looks_like_card_number(number)


@pytest.mark.parametrize("typed", ["4242 4242 4242 4242", "4242-4242-4242-4242", " 4242424242424242"])
def test_spaces_and_dashes_are_typing_not_digits(typed: str) -> None:
    assert clean_number(typed, "card[number]") == "4242424242424242"


@pytest.mark.parametrize(
    ("typed", "error_class", "code"),
    [
        ("4242x42424242424", errors.CardNumberInvalid, "invalid_number"),
        ("42424242424", errors.CardNumberInvalid, "invalid_number"),  # 11 digits
        ("42424242424242424242", errors.CardNumberInvalid, "invalid_number"),  # 20 digits
        ("37828224631000", errors.CardNumberInvalid, "invalid_number"),  # Amex has 15
        ("4242424242424241", errors.CardNumberIncorrect, "incorrect_number"),  # Luhn
    ],
    ids=["letter", "too short", "too long", "brand length", "luhn"],
)
def test_bad_numbers_name_the_field(typed: str, error_class: type[errors.InvalidRequest], code: str) -> None:
    with pytest.raises(error_class) as error:
        clean_number(typed, "card[number]")
    assert (error.value.code, error.value.param) == (code, "card[number]")
    assert typed not in error.value.message, "a refusal never repeats the number"


def test_an_unknown_brand_is_checked_by_luhn_alone() -> None:
    number = "9" * 15
    number += _check_digit(number)
    assert brand_for(number) is Brand.UNKNOWN
    assert clean_number(number, "n") == number
    assert not looks_like_card_number(number), "the scanner wants a known IIN"


@given(st.text(alphabet="0123456789", min_size=11, max_size=18))
def test_a_check_digit_makes_any_payload_luhn_valid_and_one_changed_digit_breaks_it(payload: str) -> None:
    number = payload + _check_digit(payload)
    assert luhn_valid(number)
    changed = str((int(number[0]) + 1) % 10) + number[1:]
    assert not luhn_valid(changed)


@pytest.mark.parametrize(
    ("month", "year", "error_class", "param"),
    [
        (0, 2027, errors.ExpiryMonthInvalid, "card[exp_month]"),
        (13, 2027, errors.ExpiryMonthInvalid, "card[exp_month]"),
        (12, 2025, errors.ExpiryYearInvalid, "card[exp_year]"),
        (1, 2026 + EXPIRY_YEARS_AHEAD_MAX + 1, errors.ExpiryYearInvalid, "card[exp_year]"),
        (11, 2026, errors.CardExpired, "card[exp_month]"),
    ],
    ids=["month 0", "month 13", "last year", "too far ahead", "last month"],
)
def test_expiry_refusals(month: int, year: int, error_class: type[errors.InvalidRequest], param: str) -> None:
    with pytest.raises(error_class) as error:
        check_expiry(month, year, TODAY, month_param="card[exp_month]", year_param="card[exp_year]")
    assert error.value.param == param


def test_a_card_is_valid_through_its_expiry_month() -> None:
    check_expiry(12, 2026, TODAY, month_param="m", year_param="y")
    check_expiry(1, 2026 + EXPIRY_YEARS_AHEAD_MAX, TODAY, month_param="m", year_param="y")


@pytest.mark.parametrize(
    ("cvc", "brand", "valid"),
    [
        ("123", Brand.VISA, True),
        ("1234", Brand.AMEX, True),
        ("1234", Brand.VISA, False),
        ("123", Brand.AMEX, False),
        ("12a", Brand.VISA, False),
    ],
)
def test_cvc_length_follows_the_brand(cvc: str, brand: Brand, valid: bool) -> None:
    if valid:
        check_cvc(cvc, brand, "card[cvc]")
        return
    with pytest.raises(errors.CvcInvalid) as error:
        check_cvc(cvc, brand, "card[cvc]")
    assert (error.value.code, error.value.param) == ("invalid_cvc", "card[cvc]")


@pytest.mark.parametrize("name", ["", "   ", "A" * (NAME_LENGTH_MAX + 1), "Ada\nLovelace", "Ada\x00"])
def test_names_must_be_printable_and_bounded(name: str) -> None:
    with pytest.raises(errors.NameInvalid) as error:
        check_name(name, "card[name]")
    assert error.value.param == "card[name]"


def test_a_name_may_be_any_printable_text_up_to_the_limit() -> None:
    check_name("Zoë Ångström-O'Neil", "card[name]")
    check_name("A" * NAME_LENGTH_MAX, "card[name]")


@pytest.mark.parametrize(("number", "brand", "funding"), TEST_CARDS)
def test_masked_shows_bin_and_last_4_only(number: str, brand: Brand, funding: str) -> None:
    shown = masked(number)
    assert len(shown) == len(number)
    assert (shown[:6], shown[-4:], set(shown[6:-4])) == (number[:6], number[-4:], {"*"})
