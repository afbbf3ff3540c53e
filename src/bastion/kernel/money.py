"""Money: an integer count of minor units and an ISO 4217 currency. No floats, ever.

Exponents come from the ISO 4217 table (the `iso4217` package): JPY has 0 decimals,
EUR 2, KWD 3. Codes without a minor unit (funds, precious metals, the "no currency" code) are refused.
Amounts are bounded to a signed 64-bit integer, the width the ledger stores.
"""

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from iso4217 import Currency as _Iso4217

from bastion.kernel.errors import InvalidRequest

AMOUNT_MINOR_MAX = 2**63 - 1

_EXPONENTS: dict[str, int] = {entry.code: entry.exponent for entry in _Iso4217 if entry.exponent is not None}
CURRENCIES = frozenset(_EXPONENTS)


class CurrencyMismatch(InvalidRequest):
    """Amounts in two currencies added or subtracted."""

    code = "currency_mismatch"


class AmountOutOfRange(InvalidRequest):
    """An amount, or a sum or difference of two, beyond -(2^63-1) to 2^63-1 minor units (what the
    ledger stores)."""

    code = "amount_out_of_range"


def exponent(currency: str) -> int:
    """Decimal places of `currency`'s minor unit."""
    try:
        return _EXPONENTS[currency]
    except KeyError:
        raise InvalidRequest(
            f"Unknown or unsupported currency {currency!r}: use an ISO 4217 code like EUR", param="currency"
        ) from None


def _checked(amount_minor: int, param: str) -> int:
    if not -AMOUNT_MINOR_MAX <= amount_minor <= AMOUNT_MINOR_MAX:
        raise AmountOutOfRange(f"{param} must be between -(2^63-1) and 2^63-1 minor units", param=param)
    return amount_minor


@dataclass(frozen=True, slots=True)
class Money:
    amount_minor: int
    currency: str

    def __post_init__(self) -> None:
        # bool is an int in Python; an amount of True is a bug, not one cent.
        if type(self.amount_minor) is not int:
            raise InvalidRequest("amount must be an integer count of minor units", param="amount")
        _checked(self.amount_minor, "amount")
        exponent(self.currency)

    @classmethod
    def from_decimal(cls, value: Decimal | str, currency: str) -> "Money":
        """Exact conversion from major units ("10.50" EUR -> 1050); refuses anything finer
        than the currency's minor unit instead of rounding it away."""
        try:
            decimal = Decimal(value)
        except InvalidOperation:
            raise InvalidRequest(f"{value!r} is not a decimal amount", param="amount") from None
        if not decimal.is_finite():
            raise InvalidRequest("amount must be finite", param="amount")
        scaled = decimal.scaleb(exponent(currency))
        if scaled != scaled.to_integral_value():
            raise InvalidRequest(f"{currency} has {exponent(currency)} decimal places; {value} has more", param="amount")
        return cls(int(scaled), currency)

    def to_decimal(self) -> Decimal:
        return Decimal(self.amount_minor).scaleb(-exponent(self.currency))

    def _same_currency(self, other: "Money") -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"Cannot combine {self.currency} and {other.currency}", param="currency")

    def __add__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(_checked(self.amount_minor + other.amount_minor, "amount"), self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same_currency(other)
        return Money(_checked(self.amount_minor - other.amount_minor, "amount"), self.currency)

    def __neg__(self) -> "Money":
        return Money(-self.amount_minor, self.currency)

    def __str__(self) -> str:
        places = exponent(self.currency)
        return f"{self.to_decimal():.{places}f} {self.currency}"
