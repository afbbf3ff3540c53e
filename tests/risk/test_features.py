"""The model's features as of each transaction's time: by hand on a small history (windows'
open and closed ends, the transaction in its customer's windows, terminals' delayed windows,
weekends and nights), one transaction alone equal to its row among all, and the requirement of
one implementation for training and serving: a day of imported history replayed through the
online path, under the app role, equals the offline features exactly."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bastion import bootstrap
from bastion.platform.db import Actor, Database, Tenant
from bastion.platform.settings import Settings
from bastion.risk import learning_repository
from bastion.risk.features import DAY_S, FEATURES, SIGNALS, History, Transactions, feature_matrix
from bastion.risk.history import import_history
from bastion.risk.learning import labelled_set
from bastion.risk.models import Entities, features_as_of
from tests.support.postgres import TestDatabase
from tests.support.risk_ml import START, new_merchant, write_simulation

HOUR_S = 3_600
DELAY_DAYS = 7
NAN = float("nan")


def _unix(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


# A Thursday, 03:00 UTC: a night on a weekday.
Q = _unix("2018-04-12 03:00:00")
Q_SIGNALS = [0.9, 1.0, 42.0, 0.0, 1.0, 850.5, 3.0]
# (customer, terminal, seconds, amount, fraud): the four transactions described first, then the
# rest of the history. Customers and terminals 1, 2 and 3 have nothing but their transaction.
DESCRIBED = [
    (0, 0, Q, 100.0, 0),
    (1, 1, _unix("2018-04-14 07:00:00"), 33.3, 0),  # Saturday, past the night
    (2, 2, _unix("2018-04-15 06:59:59"), 12.5, 1),  # Sunday, the night's last second
    (3, 3, _unix("2018-04-16 00:00:00"), 7.0, 0),  # Monday's first second
]
CUSTOMER_0 = [
    (Q, 60.0, 1),  # the same second: not before the transaction
    (Q + 1, 70.0, 1),  # after it
    (Q - 12 * HOUR_S, 10.0, 0),  # 1, 7 and 30 days
    (Q - 1 * DAY_S, 80.0, 0),  # a window is open at its start: 7 and 30 days
    (Q - 3 * DAY_S, 20.0, 1),  # 7 and 30; too recent to be a known fraud
    (Q - 7 * DAY_S, 15.0, 1),  # 30; known (the delayed window is closed at its end)
    (Q - 10 * DAY_S, 30.0, 1),  # 30; known
    (Q - 30 * DAY_S, 25.0, 0),  # none
    (Q - 31 * DAY_S, 40.0, 1),  # known
    (Q - 37 * DAY_S, 50.0, 1),  # none: the delayed window is open at its start
]
TERMINAL_0 = [
    (Q - 2 * DAY_S, 1),  # within the delay
    (Q - 7 * DAY_S + 1, 1),  # a second within the delay
    (Q - 7 * DAY_S, 1),  # 1, 7 and 30 days before the delay
    (Q - 7 * DAY_S - 12 * HOUR_S, 0),  # 1, 7 and 30
    (Q - 8 * DAY_S, 0),  # 7 and 30
    (Q - 20 * DAY_S, 1),  # 30
    (Q - 37 * DAY_S, 1),  # none
]


def _hand_made() -> np.ndarray:
    customer = [row[0] for row in DESCRIBED] + [0] * len(CUSTOMER_0)
    customer_seconds = [row[2] for row in DESCRIBED] + [row[0] for row in CUSTOMER_0]
    customer_amount = [row[3] for row in DESCRIBED] + [row[1] for row in CUSTOMER_0]
    customer_fraud = [row[4] for row in DESCRIBED] + [row[2] for row in CUSTOMER_0]
    terminal = [row[1] for row in DESCRIBED] + [0] * len(TERMINAL_0)
    terminal_seconds = [row[2] for row in DESCRIBED] + [row[0] for row in TERMINAL_0]
    terminal_fraud = [row[4] for row in DESCRIBED] + [row[1] for row in TERMINAL_0]
    signals = np.full((len(DESCRIBED), len(SIGNALS)), np.nan)
    signals[0] = Q_SIGNALS
    return feature_matrix(
        Transactions(
            np.array([row[0] for row in DESCRIBED]),
            np.array([row[1] for row in DESCRIBED]),
            np.array([row[2] for row in DESCRIBED]),
            np.array([row[3] for row in DESCRIBED]),
            signals,
        ),
        History.of(np.array(customer), np.array(customer_seconds), np.array(customer_amount), np.array(customer_fraud, float)),
        History.of(np.array(terminal), np.array(terminal_seconds), np.ones(len(terminal)), np.array(terminal_fraud, float)),
        delay_days=DELAY_DAYS,
    )


def _alone(amount: float, *, weekend: float, night: float) -> dict[str, float]:
    """The features of a transaction whose customer and terminal have no other rows."""
    return {
        "amount": amount,
        "is_weekend": weekend,
        "is_night": night,
        **{f"customer_tx_{days}d": 1.0 for days in (1, 7, 30)},
        **{f"customer_avg_amount_{days}d": amount for days in (1, 7, 30)},
        **{f"terminal_{kind}_{days}d": 0.0 for kind in ("tx", "risk") for days in (1, 7, 30)},
        "customer_amount_ratio_30d": NAN,
        "customer_known_frauds_30d": 0.0,
        **dict.fromkeys(SIGNALS, NAN),
    }


def test_features_of_a_small_history_by_hand() -> None:
    matrix = _hand_made()
    assert matrix.shape == (len(DESCRIBED), len(FEATURES))
    described = {
        "amount": 100.0,
        "is_weekend": 0.0,
        "is_night": 1.0,
        # Earlier rows (10 | 10, 80, 20 | 10, 80, 20, 15, 30) and the transaction itself (100).
        "customer_tx_1d": 2.0,
        "customer_tx_7d": 4.0,
        "customer_tx_30d": 6.0,
        "customer_avg_amount_1d": 55.0,
        "customer_avg_amount_7d": 52.5,
        "customer_avg_amount_30d": 42.5,
        # Frauds among the terminal's rows in (t - 7 - w days, t - 7 days].
        "terminal_tx_1d": 2.0,
        "terminal_tx_7d": 3.0,
        "terminal_tx_30d": 4.0,
        "terminal_risk_1d": 1 / 2,
        "terminal_risk_7d": 1 / 3,
        "terminal_risk_30d": 2 / 4,
        # 100 against the 30 days' earlier mean, 155 / 5.
        "customer_amount_ratio_30d": 100 / 31,
        "customer_known_frauds_30d": 3.0,
        **dict(zip(SIGNALS, Q_SIGNALS, strict=True)),
    }
    expected = [
        described,
        _alone(33.3, weekend=1.0, night=0.0),
        _alone(12.5, weekend=1.0, night=1.0),
        _alone(7.0, weekend=0.0, night=1.0),
    ]
    for row, wanted in zip(matrix, expected, strict=True):
        assert list(wanted) == list(FEATURES)
        np.testing.assert_allclose(row, list(wanted.values()), rtol=1e-15, atol=0, equal_nan=True)


def test_a_transaction_alone_has_its_row_of_the_whole() -> None:
    # A history on an hourly grid: rows of one customer at the same second, and rows exactly a
    # window's length apart, are common.
    rng = np.random.default_rng(20)
    rows, hours = 6_000, 80 * 24
    customer = rng.integers(0, 40, size=rows)
    terminal = rng.integers(0, 25, size=rows)
    seconds = Q + rng.integers(0, hours, size=rows) * HOUR_S
    amount = rng.integers(1, 100_000, size=rows) / 100
    fraud = (rng.uniform(size=rows) < 0.15).astype(np.float64)
    signals = np.where(rng.uniform(size=(rows, len(SIGNALS))) < 0.5, rng.uniform(0, 10, size=(rows, len(SIGNALS))), np.nan)
    whole = feature_matrix(
        Transactions(customer, terminal, seconds, amount, signals),
        History.of(customer, seconds, amount, fraud),
        History.of(terminal, seconds, amount, fraud),
        delay_days=DELAY_DAYS,
    )
    one = np.zeros(1, dtype=np.int64)
    for index in rng.choice(rows, size=300, replace=False):
        mine, here = customer == customer[index], terminal == terminal[index]
        alone = feature_matrix(
            Transactions(one, one, seconds[[index]], amount[[index]], signals[[index]]),
            History.of(np.zeros(mine.sum(), dtype=np.int64), seconds[mine], amount[mine], fraud[mine]),
            History.of(np.zeros(here.sum(), dtype=np.int64), seconds[here], amount[here], fraud[here]),
            delay_days=DELAY_DAYS,
        )
        np.testing.assert_array_equal(alone[0], whole[index], err_msg=f"row {index}")


@pytest.fixture
async def owner(test_database: TestDatabase) -> AsyncIterator[Database]:
    database = bootstrap.owner_database(test_database.owner_url)
    yield database
    await database.dispose()


@pytest.fixture
async def app_database(test_database: TestDatabase, settings: Settings) -> AsyncIterator[Database]:
    """The API's role, under row-level security: what a decision reads the history as."""
    database = bootstrap.role_database(settings, test_database.owner_url, test_database.roles.app)
    yield database
    await database.dispose()


async def test_a_day_replayed_through_the_online_path_has_the_offline_features(
    *, owner: Database, app_database: Database, tmp_path: Path
) -> None:
    days, replayed_day = 45, 40  # 37 days of look-back (30 and the delay) before the replayed day
    merchant_id = await new_merchant(owner)
    tenant = Tenant(merchant_id, livemode=False)
    path = tmp_path / "history.csv"
    write_simulation(path, customers=200, terminals=400, days=days, seed=11)
    await import_history(owner, path, tenant, on_progress=lambda _: None, now=datetime.now(UTC))

    first = datetime(START.year, START.month, START.day, tzinfo=UTC)
    async with owner.connection() as connection:
        rows = await learning_repository.history_between(
            connection, livemode=False, since=first, until=first + timedelta(days=days), merchant_id=merchant_id
        )
    offline = labelled_set(rows, delay_days=DELAY_DAYS)
    replayed = np.flatnonzero((offline.seconds - int(first.timestamp())) // DAY_S == replayed_day)
    assert len(replayed) > 200

    prefix = f"{merchant_id}:"  # the offline path's keys carry their merchant, the online path's are the merchant's own
    online = np.empty((len(replayed), len(FEATURES)))
    async with app_database.unit_of_work(tenant, Actor(id="test")) as uow:
        for position, index in enumerate(replayed):
            row = rows[index]
            online[position] = await features_as_of(
                uow.connection,
                tenant,
                Entities(customer=row["customer"].removeprefix(prefix), terminal=row["terminal"].removeprefix(prefix)),
                at=datetime.fromtimestamp(row["seconds"], UTC),
                amount=row["amount"],
                signals={},
                delay_days=DELAY_DAYS,
            )
    np.testing.assert_array_equal(online, offline.features[replayed])

    # Not a day of empty windows: customers with earlier rows (and some with none that day),
    # terminals with frauds before the delay, customers with known frauds.
    column = {name: offline.features[replayed, index] for index, name in enumerate(FEATURES)}
    assert (column["customer_tx_30d"] > 1).mean() > 0.9
    assert (column["customer_tx_1d"] == 1).sum() > 10
    assert (column["terminal_risk_30d"] > 0).sum() > 10
    assert (column["customer_known_frauds_30d"] > 0).sum() > 0
