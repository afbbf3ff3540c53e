"""What the log redactor masks and what it keeps: card numbers, CVCs, passwords, secrets
and Authorization values, in free text and in nested structures."""

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.platform.redaction import PAN_MASK, SECRET_MASK, luhn_valid, masked, redact_text, redact_value

# Public test card numbers (Stripe's documentation), never real ones.
TEST_CARDS = [
    "4242424242424242",  # Visa
    "4000056655665556",  # Visa debit
    "5555555555554444",  # Mastercard
    "378282246310005",  # American Express
    "6011111111111117",  # Discover
    "3056930009020004",  # Diners Club
]


def _grouped(number: str, separator: str) -> str:
    return separator.join(number[start : start + 4] for start in range(0, len(number), 4))


def _check_digit(body: str) -> str:
    """The Luhn check digit, computed independently of the code under test."""
    total = 0
    for index, char in enumerate(reversed(body)):
        doubled = int(char) * 2 if index % 2 == 0 else int(char)
        total += doubled - 9 if doubled > 9 else doubled
    return str((10 - total % 10) % 10)


@pytest.mark.parametrize("number", TEST_CARDS)
def test_test_cards_are_luhn_valid(number: str) -> None:
    assert luhn_valid(number)
    assert _check_digit(number[:-1]) == number[-1]


@pytest.mark.parametrize("number", TEST_CARDS)
@pytest.mark.parametrize("separator", ["", " ", "-"])
def test_card_numbers_are_masked(number: str, separator: str) -> None:
    written = _grouped(number, separator)
    assert redact_text(f"charge card {written} now") == f"charge card {PAN_MASK} now"
    assert redact_text(f"x{written}y") == f"x{PAN_MASK}y"


@pytest.mark.parametrize(
    "text",
    [
        "qty 1 4242424242424242",  # a number before it, joined by a space
        "12-4242-4242-4242-4242",  # a number before it, joined by a dash
        "4242 4242 4242 4242 12",  # a number after it
        "/v1/customers/4242424242424242",
        "token_4242424242424242",
    ],
)
def test_card_numbers_beside_other_numbers_are_masked(text: str) -> None:
    assert "4242" not in redact_text(text)


def test_a_luhn_valid_window_of_groups_masks_the_whole_run() -> None:
    # On purpose: "5678 9012 3456" is Luhn-valid, so the run may hold a card number.
    # Logs lose a number that only looks like a card; a card number never gets through.
    assert redact_text("ref 1234 5678 9012 3456") == f"ref {PAN_MASK}"


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424241",  # Luhn-invalid
        "4111 1111 1111 1112",  # Luhn-invalid, and so is every 12+ digit window of whole groups
        "1234567890123",  # Luhn-invalid 13 digits
        "42424242424",  # 11 digits: too short to be a card number
        "0",
        "order 7 of 12, amount 1050",
        "2026-11-23T12:00:00Z",
        "4242424242424242424242",  # 22 digits in one run: not a card number
    ],
)
def test_other_numbers_are_kept(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"cvc": "123"}', f'{{"cvc": "{SECRET_MASK}"}}'),
        ("cvc=123&exp=12", f"cvc={SECRET_MASK}&exp=12"),
        ("cvv: 4567", f"cvv: {SECRET_MASK}"),
        ("cvc2=999", f"cvc2={SECRET_MASK}"),
        ("'csc': '123'", f"'csc': '{SECRET_MASK}'"),
        ("password=hunter2", f"password={SECRET_MASK}"),
        ('{"Password": "hunter2"}', f'{{"Password": "{SECRET_MASK}"}}'),
    ],
)
def test_cvc_and_password_pairs_in_text_are_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "secret",
    [
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_51Habc0123XYZ",
        "pk_test_TYooMQauvdEDq54NiTphI7jx",
        "rk_live_abc123DEF",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ],
)
@pytest.mark.parametrize("template", ["{}", "key {} used", "key={}", "token_{}", "'{}'", "[{}]"])
def test_secrets_are_masked(secret: str, template: str) -> None:
    redacted = redact_text(template.format(secret))
    assert secret not in redacted
    assert secret.rsplit("_", maxsplit=1)[-1] not in redacted
    assert SECRET_MASK in redacted


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer opaque.token-value",
        "authorization=opaque.token-value",
        "AUTHORIZATION: Basic opaque.token-value",
        '{"authorization": "Bearer opaque.token-value"}',
        "headers: Bearer opaque.token-value",
    ],
)
def test_authorization_values_in_text_are_masked(text: str) -> None:
    redacted = redact_text(text)
    assert "opaque" not in redacted
    assert SECRET_MASK in redacted


def test_nested_structures_are_masked_by_key_and_by_value() -> None:
    logged: dict[str, Any] = {
        "headers": {"Authorization": "Bearer opaque", "accept": "application/json"},
        "card": {"cvc": "123", "CVV": 456, "cvc2": "789", "csc": "012", "number": "4242 4242 4242 4242", "exp_month": 12},
        "user": {"password": "hunter2", "name": "Jenny"},
        "items": [{"note": "paid with 5555555555554444"}, ("6011-1111-1111-1117", 3)],
        "5555555555554444": "a card number as a key",
        "as_number": 378282246310005,
        "flags": [True, None, 1.5],
    }
    assert redact_value(logged) == {
        "headers": {"Authorization": SECRET_MASK, "accept": "application/json"},
        "card": {
            "cvc": SECRET_MASK,
            "CVV": SECRET_MASK,
            "cvc2": SECRET_MASK,
            "csc": SECRET_MASK,
            "number": PAN_MASK,
            "exp_month": 12,
        },
        "user": {"password": SECRET_MASK, "name": "Jenny"},
        "items": [{"note": f"paid with {PAN_MASK}"}, [PAN_MASK, 3]],
        PAN_MASK: "a card number as a key",
        "as_number": PAN_MASK,
        "flags": [True, None, 1.5],
    }


@st.composite
def luhn_numbers(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    body = draw(st.text(alphabet="0123456789", min_size=length - 1, max_size=length - 1))
    return body + _check_digit(body)


@given(
    number=luhn_numbers(),
    separator=st.sampled_from(["", " ", "-"]),
    prefix=st.text(max_size=40),
    suffix=st.text(max_size=40),
)
def test_any_luhn_number_in_any_text_is_masked(number: str, separator: str, prefix: str, suffix: str) -> None:
    # A digit glued to the number would make it another, longer number: keep the edges non-digits.
    text = prefix.rstrip("0123456789") + _grouped(number, separator) + suffix.lstrip("0123456789")
    redacted = redact_text(text)
    assert number not in redacted
    assert _grouped(number, separator) not in redacted
    assert PAN_MASK in redacted


# Text made of what the patterns look for: digits, their separators, and pieces of the words.
_PIECES = st.sampled_from(
    [
        "4242",
        "4242424242424242",
        "0",
        "7",
        " ",
        "-",
        "_",
        ":",
        "=",
        '"',
        "sk_test_",
        "pk_live_",
        "whsec_",
        "Bearer ",
        "Authorization: ",
        "cvc",
        "PAN",
        "password",
        "api_key",
        "card_number",
        "pi_01M93",
        "succeeded",
        "EUR",
        "é",
    ]
)


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_shortcut_never_changes_what_is_masked(text: str) -> None:
    assert redact_text(text) == masked(text)
