"""Labelled card transactions made up, by the generator of the Fraud Detection Handbook (Le Borgne
et al., "Reproducible Machine Learning for Credit Card Fraud Detection - Practical Handbook",
2022, chapter 3.2) as its book describes it: customers and terminals placed on a 100x100 grid,
each customer paying at the terminals within a radius of it, around noon, amounts drawn from the
customer's own profile; then three kinds of fraud laid over them (docs/risk-ml.md, Data).

Vectorized with NumPy and seeded with one number: the same arguments give the same file."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import numpy as np
import numpy.typing as npt

GRID = 100.0
RADIUS = 5.0
_DAY_S = 86_400
_NOON_S = _DAY_S / 2
_TIME_STDDEV_S = 20_000
SCENARIO_AMOUNT_OVER = 220.0
SCENARIO_TERMINALS_A_DAY = 2
SCENARIO_TERMINAL_DAYS = 28
SCENARIO_CUSTOMERS_A_DAY = 3
SCENARIO_CUSTOMER_DAYS = 14
_CUSTOMER_FRAUD_SHARE = 3  # one transaction in three of a compromised customer's
_CUSTOMER_AMOUNT_FACTOR = 5
_DISTANCE_CHUNK = 256  # customers per block of the customer-terminal distance matrix

HEADER = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)


@dataclass(frozen=True, slots=True)
class Simulated:
    """The transactions in time order, one array per column; `seconds` count from `start` at midnight UTC."""

    start: date
    seconds: npt.NDArray[np.int64]
    customer: npt.NDArray[np.int64]
    terminal: npt.NDArray[np.int64]
    amount: npt.NDArray[np.float64]
    fraud: npt.NDArray[np.int8]
    scenario: npt.NDArray[np.int8]

    def __len__(self) -> int:
        return len(self.seconds)

    def csv_lines(self, chunk: int = 100_000) -> Iterator[str]:
        """The data set as the Handbook's CSV, header first, `chunk` rows at a time."""
        yield ",".join(HEADER) + "\n"
        epoch = datetime.combine(self.start, time(), tzinfo=UTC).timestamp()
        for begin in range(0, len(self), chunk):
            end = min(begin + chunk, len(self))
            seconds = self.seconds[begin:end]
            stamps = np.datetime_as_string((seconds + int(epoch)).astype("datetime64[s]"), unit="s")
            rows = zip(
                range(begin, end),
                stamps.tolist(),
                self.customer[begin:end].tolist(),
                self.terminal[begin:end].tolist(),
                self.amount[begin:end].tolist(),
                seconds.tolist(),
                (seconds // _DAY_S).tolist(),
                self.fraud[begin:end].tolist(),
                self.scenario[begin:end].tolist(),
                strict=True,
            )
            yield "".join(
                f"{tx_id},{stamp.replace('T', ' ')},{customer},{terminal},{amount:.2f},{second},{day},{fraud},{scenario}\n"
                for tx_id, stamp, customer, terminal, amount, second, day, fraud, scenario in rows
            )


def simulate(*, customers: int, terminals: int, days: int, start: date, seed: int) -> Simulated:
    """`customers` customers paying at `terminals` terminals for `days` days from `start`."""
    rng = np.random.default_rng(seed)
    customer_xy = rng.uniform(0, GRID, size=(customers, 2))
    mean_amount = rng.uniform(5, 100, size=customers)
    std_amount = mean_amount / 2
    mean_tx_per_day = rng.uniform(0, 4, size=customers)
    terminal_xy = rng.uniform(0, GRID, size=(terminals, 2))
    reachable = _terminals_within_radius(customer_xy, terminal_xy)

    per_day = rng.poisson(np.repeat(mean_tx_per_day[:, None], days, axis=1))
    customer = np.repeat(np.repeat(np.arange(customers), days), per_day.ravel())
    day = np.repeat(np.tile(np.arange(days), customers), per_day.ravel())
    second_of_day = rng.normal(_NOON_S, _TIME_STDDEV_S, size=len(customer)).astype(np.int64)
    amount = rng.normal(mean_amount[customer], std_amount[customer])
    negative = amount < 0
    amount[negative] = rng.uniform(0, mean_amount[customer[negative]] * 2)
    # The Handbook drops transactions drawn outside the day, and those of customers with no terminal near.
    counts = np.array([len(near) for near in reachable])
    kept = (second_of_day > 0) & (second_of_day < _DAY_S) & (counts[customer] > 0)
    customer, day, second_of_day, amount = customer[kept], day[kept], second_of_day[kept], amount[kept]
    pick = np.floor(rng.uniform(size=len(customer)) * counts[customer]).astype(np.int64)
    terminal = np.array([reachable[who][which] for who, which in zip(customer.tolist(), pick.tolist(), strict=True)])

    seconds = day * _DAY_S + second_of_day
    order = np.argsort(seconds, kind="stable")
    seconds, customer, terminal, day = seconds[order], customer[order], terminal[order].astype(np.int64), day[order]
    amount = np.round(amount[order], 2)
    fraud, scenario = _add_frauds(rng, (customers, terminals), day, (customer, terminal), amount)
    return Simulated(start, seconds.astype(np.int64), customer.astype(np.int64), terminal, amount, fraud, scenario)


def _terminals_within_radius(customer_xy: npt.NDArray[np.float64], terminal_xy: npt.NDArray[np.float64]) -> list[list[int]]:
    reachable: list[list[int]] = []
    for begin in range(0, len(customer_xy), _DISTANCE_CHUNK):
        block = customer_xy[begin : begin + _DISTANCE_CHUNK]
        distance = np.sqrt(((block[:, None, :] - terminal_xy[None, :, :]) ** 2).sum(axis=2))
        reachable.extend(np.flatnonzero(row < RADIUS).tolist() for row in distance)
    return reachable


def _add_frauds(
    rng: np.random.Generator,
    population: tuple[int, int],
    day: npt.NDArray[np.int64],
    paying: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    amount: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8]]:
    """The Handbook's three scenarios, in its order, each later one overriding: any amount over
    220; every payment at two terminals drawn each day, for 28 days; a third of the payments of
    three customers drawn each day, for 14 days, their amounts multiplied by 5 (in place).
    `population`: how many customers and terminals; `paying`: each transaction's customer and terminal."""
    customers, terminals = population
    customer, terminal = paying
    fraud = np.zeros(len(day), dtype=np.int8)
    scenario = np.zeros(len(day), dtype=np.int8)
    over = amount > SCENARIO_AMOUNT_OVER
    fraud[over], scenario[over] = 1, 1
    last_day = int(day.max()) if len(day) else 0
    for first in range(last_day):
        compromised = rng.choice(terminals, size=min(SCENARIO_TERMINALS_A_DAY, terminals), replace=False)
        hit = (day >= first) & (day < first + SCENARIO_TERMINAL_DAYS) & np.isin(terminal, compromised)
        fraud[hit], scenario[hit] = 1, 2
    for first in range(last_day):
        compromised = rng.choice(customers, size=min(SCENARIO_CUSTOMERS_A_DAY, customers), replace=False)
        candidates = np.flatnonzero((day >= first) & (day < first + SCENARIO_CUSTOMER_DAYS) & np.isin(customer, compromised))
        chosen = rng.choice(candidates, size=len(candidates) // _CUSTOMER_FRAUD_SHARE, replace=False)
        amount[chosen] = np.round(amount[chosen] * _CUSTOMER_AMOUNT_FACTOR, 2)
        fraud[chosen], scenario[chosen] = 1, 3
    return fraud, scenario
