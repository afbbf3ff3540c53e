"""The model's features, as of each transaction's own time, computed by one implementation for
training and for serving (docs/risk-ml.md, Features): training passes every transaction of the
window with the whole history, a decision passes its one attempt with the customer's and the
terminal's rows read for it, and both go through `feature_matrix`.

The Handbook's definitions (chapter 3.4), with one precision: a customer's window holds the
transaction itself and the customer's earlier ones, those at the same second excluded, so that
replaying a stored transaction sees what its live decision saw. A terminal's window ends a delay
before the transaction (default 7 days), because fraud labels arrive late."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

DAY_S = 86_400
WINDOW_DAYS = (1, 7, 30)
DELAY_DAYS_DEFAULT = 7
NIGHT_LAST_HOUR = 6  # the Handbook's night: hours 0 to 6
# Keys pack (entity, second) into one int64: seconds counted from a margin before the first one,
# so that no window reaches into the previous entity's rows.
_SECONDS_SPAN = 1 << 36
_MARGIN_S = 64 * DAY_S
# Amounts are summed in whole cents (the history stores cents), exactly: a window's sum is then
# the same whatever else the history holds, training's every row or a decision's few, as the
# differences of a running sum in floating point are not.
_CENTS = 100

# What the risk engine measures of an attempt, present only for Bastion's own payments
# (docs/risk-ml.md); missing (NaN) for imported history, where LightGBM learns nothing from them.
SIGNALS = (
    "bot_likelihood",
    "is_pasted_card_number",
    "checkout_seconds",
    "is_timezone_mismatch",
    "is_new_device",
    "travel_speed_kmh",
    "attempts_per_card_daily",
)

FEATURES = (
    "amount",
    "is_weekend",
    "is_night",
    *(f"customer_tx_{days}d" for days in WINDOW_DAYS),
    *(f"customer_avg_amount_{days}d" for days in WINDOW_DAYS),
    *(f"terminal_tx_{days}d" for days in WINDOW_DAYS),
    *(f"terminal_risk_{days}d" for days in WINDOW_DAYS),
    # Beyond the Handbook: how far the amount is from the customer's habit, and what the
    # customer's own labels say once they have arrived.
    "customer_amount_ratio_30d",
    "customer_known_frauds_30d",
    *SIGNALS,
)

Array = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class History:
    """Transactions of one kind of entity (customers or terminals), sorted by entity then time."""

    entity: Ints
    seconds: Ints  # unix seconds
    amount: Array
    fraud: Array  # 1.0 where known fraud, else 0.0

    @classmethod
    def of(cls, entity: Ints, seconds: Ints, amount: Array, fraud: Array) -> "History":
        order = np.lexsort((seconds, entity))
        return cls(entity[order], seconds[order], amount[order], fraud[order])


@dataclass(frozen=True, slots=True)
class Transactions:
    """The transactions to describe: their customers' and terminals' entity codes (as in the
    histories), their times, amounts and engine signals (one column per name in SIGNALS)."""

    customer: Ints
    terminal: Ints
    seconds: Ints
    amount: Array
    signals: Array  # shape (n, len(SIGNALS))


@dataclass(frozen=True, slots=True)
class _Windows:
    count: Array
    amount: Array
    fraud: Array


class _Indexed:
    """A history with its packed keys and running sums, for windows by binary search."""

    def __init__(self, history: History, origin: int) -> None:
        self.origin = origin
        self.keys = _keys(history.entity, history.seconds, origin)
        self.cents = np.concatenate(([0], np.cumsum(np.round(history.amount * _CENTS).astype(np.int64))))
        self.frauds = np.concatenate(([0.0], np.cumsum(history.fraud)))

    def windows(self, entity: Ints, seconds: Ints, *, after_s: int, until_s: int, until_included: bool) -> _Windows:
        """Per query, the sums over the entity's rows with time in (t + after_s, t + until_s],
        or (t + after_s, t + until_s) when not `until_included`."""
        queries = _keys(entity, seconds, self.origin)
        left = np.searchsorted(self.keys, queries + after_s, side="right")
        right = np.searchsorted(self.keys, queries + until_s, side="right" if until_included else "left")
        return _Windows(
            (right - left).astype(np.float64),
            (self.cents[right] - self.cents[left]) / _CENTS,
            self.frauds[right] - self.frauds[left],
        )


def _keys(entity: Ints, seconds: Ints, origin: int) -> Ints:
    return entity * _SECONDS_SPAN + (seconds - origin)


def feature_matrix(
    transactions: Transactions, customers: History, terminals: History, *, delay_days: int = DELAY_DAYS_DEFAULT
) -> Array:
    """One row per transaction, one column per name in FEATURES."""
    earliest = min(
        (int(array.min()) for array in (transactions.seconds, customers.seconds, terminals.seconds) if len(array)), default=0
    )
    origin = earliest - _MARGIN_S - delay_days * DAY_S
    by_customer, by_terminal = _Indexed(customers, origin), _Indexed(terminals, origin)
    seconds, amount = transactions.seconds, transactions.amount
    columns: list[Array] = [amount, _is_weekend(seconds), _is_night(seconds)]
    customer_windows = [
        by_customer.windows(transactions.customer, seconds, after_s=-days * DAY_S, until_s=0, until_included=False)
        for days in WINDOW_DAYS
    ]
    # The transaction itself is in its customer's windows.
    columns += [window.count + 1 for window in customer_windows]
    columns += [(window.amount + amount) / (window.count + 1) for window in customer_windows]
    delay = delay_days * DAY_S
    terminal_windows = [
        by_terminal.windows(transactions.terminal, seconds, after_s=-delay - days * DAY_S, until_s=-delay, until_included=True)
        for days in WINDOW_DAYS
    ]
    columns += [window.count for window in terminal_windows]
    columns += [_ratio(window.fraud, window.count, empty=0.0) for window in terminal_windows]
    before_30d = customer_windows[-1]
    columns.append(_ratio(amount * before_30d.count, before_30d.amount, empty=np.nan))
    known = by_customer.windows(transactions.customer, seconds, after_s=-delay - 30 * DAY_S, until_s=-delay, until_included=True)
    columns.append(known.fraud)
    matrix = np.column_stack([*columns, transactions.signals]) if len(seconds) else np.empty((0, len(FEATURES)))
    return matrix.astype(np.float64)


def _ratio(numerator: Array, denominator: Array, *, empty: float) -> Array:
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, empty)


def _is_weekend(seconds: Ints) -> Array:
    weekday = (seconds // DAY_S + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    return (weekday >= 5).astype(np.float64)


def _is_night(seconds: Ints) -> Array:
    return ((seconds % DAY_S) // 3600 <= NIGHT_LAST_HOUR).astype(np.float64)


def signal_row(values: dict[str, object]) -> list[float]:
    """An attempt's engine signals in SIGNALS' order: numbers and booleans as floats, missing as NaN."""
    return [_float(values.get(name)) for name in SIGNALS]


def _float(value: object) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value)) if value is not None else np.nan
    except ValueError:
        return np.nan


def codes(keys: Sequence[str] | npt.NDArray[np.str_]) -> Ints:
    """Entity keys as codes, equal keys equal codes."""
    _, inverse = np.unique(np.asarray(keys), return_inverse=True)
    return inverse.astype(np.int64)
