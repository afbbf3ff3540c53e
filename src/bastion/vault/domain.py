"""Pure rules of card data: number checks, brand by IIN range, expiry, what may be shown.

The browser fields apply the same rules as the cardholder types (`static/card-fields.js`);
these are the ones that decide.
"""

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from bastion.platform.redaction import luhn_valid
from bastion.vault.errors import (
    CardExpired,
    CardNumberIncorrect,
    CardNumberInvalid,
    CvcInvalid,
    ExpiryMonthInvalid,
    ExpiryYearInvalid,
    LiveCardInTestMode,
    NameInvalid,
)


class Brand(StrEnum):
    VISA = "visa"
    MASTERCARD = "mastercard"
    AMEX = "amex"
    DISCOVER = "discover"
    DINERS = "diners"
    JCB = "jcb"
    UNIONPAY = "unionpay"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class _IinRange:
    brand: Brand
    low: int
    high: int
    lengths: tuple[int, ...]

    @property
    def prefix_digits(self) -> int:
        return len(str(self.low))


# Published IIN ranges, most specific first (Diners 36 before anything broader, say).
_IIN_RANGES = (
    _IinRange(Brand.AMEX, 34, 34, (15,)),
    _IinRange(Brand.AMEX, 37, 37, (15,)),
    _IinRange(Brand.DINERS, 300, 305, (14, 16, 17, 18, 19)),
    _IinRange(Brand.DINERS, 36, 36, (14, 15, 16, 17, 18, 19)),
    _IinRange(Brand.DINERS, 38, 39, (16, 17, 18, 19)),
    _IinRange(Brand.DISCOVER, 6011, 6011, (16, 17, 18, 19)),
    _IinRange(Brand.DISCOVER, 644, 649, (16, 17, 18, 19)),
    _IinRange(Brand.DISCOVER, 65, 65, (16, 17, 18, 19)),
    _IinRange(Brand.JCB, 3528, 3589, (16, 17, 18, 19)),
    _IinRange(Brand.UNIONPAY, 62, 62, (16, 17, 18, 19)),
    _IinRange(Brand.MASTERCARD, 51, 55, (16,)),
    _IinRange(Brand.MASTERCARD, 2221, 2720, (16,)),
    _IinRange(Brand.VISA, 4, 4, (13, 16, 19)),
)

# Funding is known only where the sandbox says so: its test cards (by BIN, first 6 digits).
_TEST_FUNDING = {
    "222300": "credit",
    "362272": "credit",
    "371449": "credit",
    "510510": "prepaid",
    "601100": "credit",
    "424242": "credit",
    "400005": "debit",
    "555555": "credit",
    "520082": "debit",
    "378282": "credit",
    "601111": "credit",
    "305693": "credit",
    "356600": "credit",
    "620000": "credit",
    "400000": "credit",
    "410000": "credit",
}

# The sandbox's test cards (docs/vault-fields.md, "Test cards"), the only numbers test mode
# takes: were any Luhn-valid number accepted, a test key could tokenize real cards. The
# numbers are the ones Stripe documents, so that card forms written for Stripe test alike.
TEST_CARD_NUMBERS = frozenset(
    {
        "4242424242424242",
        "4000056655665556",
        "5555555555554444",
        "2223003122003222",
        "5200828282828210",
        "5105105105105100",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "6011000990139424",
        "3056930009020004",
        "36227206271667",
        "30569309025904",
        "3566002020360505",
        "6200000000000005",
        # Tokenized like the others; the sandbox acquirer declines them at authorization.
        "4000000000000002",
        "4000000000009995",
        "4000000000009987",
        "4000000000009979",
        "4000000000000069",
        "4000000000000127",
        "4000000000000119",
        "4000000000003220",
        "4000002760003184",
        # Authorized and captured, then disputed by the sandbox acquirer.
        "4000000000000259",
        # The risk engine's test cards (docs/risk.md): always blocked, highest risk, elevated risk.
        "4100000000000019",
        "4000000000004954",
        "4000000000009235",
    }
)

NUMBER_LENGTH_MIN = 12
NUMBER_LENGTH_MAX = 19
NAME_LENGTH_MAX = 100
EXPIRY_YEARS_AHEAD_MAX = 20
_DIGITS = re.compile(r"[0-9]+")
_NUMBER_SEPARATORS = re.compile(r"[ -]")


def brand_for(digits: str) -> Brand:
    """The brand whose IIN range holds the number's prefix; UNKNOWN when none does."""
    for candidate in _IIN_RANGES:
        prefix = digits[: candidate.prefix_digits]
        if len(prefix) == candidate.prefix_digits and candidate.low <= int(prefix) <= candidate.high:
            return candidate.brand
    return Brand.UNKNOWN


def _lengths(digits: str) -> tuple[int, ...]:
    for candidate in _IIN_RANGES:
        prefix = digits[: candidate.prefix_digits]
        if len(prefix) == candidate.prefix_digits and candidate.low <= int(prefix) <= candidate.high:
            return candidate.lengths
    return ()


def looks_like_card_number(digits: str) -> bool:
    """A run of digits a card network could have issued: a known IIN, its length, Luhn-valid.
    What the PAN scanner looks for, with fewer false alarms than Luhn alone (ids, timestamps)."""
    return len(digits) in _lengths(digits) and luhn_valid(digits)


@dataclass(frozen=True, slots=True)
class CardDetails:
    """A checked card, as it arrives at the vault; only the vault ever holds one."""

    number: str
    exp_month: int
    exp_year: int
    cvc: str | None
    name: str | None

    @property
    def brand(self) -> Brand:
        return brand_for(self.number)

    @property
    def bin(self) -> str:
        return self.number[:6]

    @property
    def last4(self) -> str:
        return self.number[-4:]

    @property
    def funding(self) -> str:
        return _TEST_FUNDING.get(self.bin, "unknown")


def clean_number(raw: str, param: str) -> str:
    """The digits of a card number typed with spaces or dashes; a 400 naming `param` otherwise."""
    digits = _NUMBER_SEPARATORS.sub("", raw)
    if not _DIGITS.fullmatch(digits):
        raise CardNumberInvalid("The card number must contain only digits, spaces or dashes.", param=param)
    if not NUMBER_LENGTH_MIN <= len(digits) <= NUMBER_LENGTH_MAX:
        raise CardNumberInvalid(f"The card number must have {NUMBER_LENGTH_MIN} to {NUMBER_LENGTH_MAX} digits.", param=param)
    lengths = _lengths(digits)
    if lengths and len(digits) not in lengths:
        raise CardNumberInvalid(
            f"A {brand_for(digits).value} card number has {' or '.join(map(str, lengths))} digits.", param=param
        )
    if not luhn_valid(digits):
        raise CardNumberIncorrect("The card number is not a valid card number.", param=param)
    return digits


def check_test_card(number: str, param: str) -> None:
    """Test mode takes the sandbox's test cards only."""
    if number not in TEST_CARD_NUMBERS:
        raise LiveCardInTestMode(
            "Test mode accepts only the sandbox's test card numbers (docs/vault-fields.md, 'Test cards'); "
            "a real card needs a live-mode key.",
            param=param,
        )


def check_expiry(exp_month: int, exp_year: int, today: date, *, month_param: str, year_param: str) -> None:
    """A card is valid through the last day of its expiry month."""
    if not 1 <= exp_month <= 12:
        raise ExpiryMonthInvalid("The expiry month must be between 1 and 12.", param=month_param)
    if not today.year <= exp_year <= today.year + EXPIRY_YEARS_AHEAD_MAX:
        raise ExpiryYearInvalid(
            f"The expiry year must be between {today.year} and {today.year + EXPIRY_YEARS_AHEAD_MAX}.", param=year_param
        )
    if (exp_year, exp_month) < (today.year, today.month):
        raise CardExpired("The card has expired.", param=month_param)


def check_cvc(cvc: str, brand: Brand, param: str) -> None:
    length = 4 if brand is Brand.AMEX else 3
    if not (_DIGITS.fullmatch(cvc) and len(cvc) == length):
        raise CvcInvalid(f"The security code of a {brand.value} card has {length} digits.", param=param)


def check_name(name: str, param: str) -> None:
    if not name.strip() or len(name) > NAME_LENGTH_MAX or any(ord(char) < 32 for char in name):
        raise NameInvalid(f"The cardholder name must be 1 to {NAME_LENGTH_MAX} printable characters.", param=param)


def masked(number: str) -> str:
    """How a card number may be shown anywhere: BIN and last 4."""
    return f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"
