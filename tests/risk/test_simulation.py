"""The Fraud Detection Handbook's generator: the same seed gives the same data, customers pay
at terminals near them around noon, and the three fraud scenarios mark what the Handbook says
they mark; its CSV is the Handbook's, and `bastion risk simulate` writes it."""

import csv
import dataclasses
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from bastion.risk import simulation
from bastion.risk.simulation import GRID, HEADER, RADIUS, SCENARIO_AMOUNT_OVER, Simulated, simulate
from tests.support.cli import run_bastion
from tests.support.risk_ml import HEADER as HANDBOOK_HEADER
from tests.support.risk_ml import START

DAY_S = 86_400
CUSTOMERS, TERMINALS, DAYS, SEED = 600, 1_200, 50, 7


@pytest.fixture(scope="module")
def simulated() -> Simulated:
    return simulate(customers=CUSTOMERS, terminals=TERMINALS, days=DAYS, start=START, seed=SEED)


def _columns(data: Simulated) -> dict[str, np.ndarray]:
    return {field.name: getattr(data, field.name) for field in dataclasses.fields(data) if field.name != "start"}


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data(simulated: Simulated) -> None:
    again = simulate(customers=CUSTOMERS, terminals=TERMINALS, days=DAYS, start=START, seed=SEED)
    for name, column in _columns(simulated).items():
        np.testing.assert_array_equal(_columns(again)[name], column, err_msg=name)
    other = simulate(customers=CUSTOMERS, terminals=TERMINALS, days=DAYS, start=START, seed=SEED + 1)
    shortest = min(len(other), len(simulated))
    assert not np.array_equal(other.amount[:shortest], simulated.amount[:shortest])
    assert not np.array_equal(other.customer[:shortest], simulated.customer[:shortest])


def test_customers_pay_only_at_terminals_within_the_radius(simulated: Simulated) -> None:
    # The positions are the generator's first draws, in its order: customers' places, their
    # mean amounts, their transactions a day, then the terminals' places. Drawn wrong, they would
    # put most pairs far apart on the 100x100 grid.
    rng = np.random.default_rng(SEED)
    customer_xy = rng.uniform(0, GRID, size=(CUSTOMERS, 2))
    rng.uniform(5, 100, size=CUSTOMERS)
    rng.uniform(0, 4, size=CUSTOMERS)
    terminal_xy = rng.uniform(0, GRID, size=(TERMINALS, 2))
    distance = np.hypot(*(customer_xy[simulated.customer] - terminal_xy[simulated.terminal]).T)
    assert distance.max() < RADIUS
    # Not one terminal each: customers spread their payments over the terminals near them.
    pairs = np.unique(np.column_stack([simulated.customer, simulated.terminal]), axis=0)
    assert len(pairs) > 3 * len(np.unique(simulated.customer))


def test_transactions_fall_inside_their_day_around_noon_in_time_order(simulated: Simulated) -> None:
    second_of_day = simulated.seconds % DAY_S
    assert second_of_day.min() > 0
    assert second_of_day.max() < DAY_S
    assert (np.diff(simulated.seconds) >= 0).all()
    assert simulated.seconds.max() < DAYS * DAY_S
    # N(noon, 20000 s), cut symmetrically at both ends of the day.
    assert abs(second_of_day.mean() - DAY_S / 2) < 500
    assert 15_000 < second_of_day.std() < 20_000
    # Poisson counts with means uniform in [0, 4]: two a day per customer, less those drawn outside the day.
    expected = CUSTOMERS * DAYS * 2 * 0.969
    assert 0.9 * expected < len(simulated) < 1.1 * expected


def test_amounts_are_positive_cents(simulated: Simulated) -> None:
    assert simulated.amount.min() >= 0
    cents = simulated.amount * 100
    np.testing.assert_allclose(np.round(cents), cents, rtol=0, atol=1e-6)


def test_every_amount_over_220_is_fraud_and_scenario_1_marks_only_those(simulated: Simulated) -> None:
    over = simulated.amount > SCENARIO_AMOUNT_OVER
    first = simulated.scenario == 1
    assert first.sum() > 0
    assert (simulated.amount[first] > SCENARIO_AMOUNT_OVER).all()
    # Some are later compromised terminals' (scenario 2) or customers' (3, whose amounts grow 5x).
    assert (simulated.fraud[over] == 1).all()
    np.testing.assert_array_equal(simulated.fraud == 1, simulated.scenario > 0)


def test_a_compromised_terminal_has_every_payment_of_the_day_fraudulent(simulated: Simulated) -> None:
    day = simulated.seconds // DAY_S
    second = simulated.scenario == 2
    assert second.sum() > 0
    cell = simulated.terminal * DAYS + day  # one number per terminal and day
    at_compromised = np.isin(cell, cell[second])
    # Scenario 3 overrides scenario 2 on a compromised customer's payments; both are fraud.
    assert (simulated.fraud[at_compromised] == 1).all()
    assert set(np.unique(simulated.scenario[at_compromised]).tolist()) <= {2, 3}


def test_scenario_3_amounts_are_five_times_an_amount_in_cents(simulated: Simulated) -> None:
    third = simulated.scenario == 3
    assert third.sum() > 0
    cents = np.round(simulated.amount[third] * 100).astype(np.int64)
    assert (cents % 5 == 0).all()
    # Five times the customer's usual amounts (5 to 100 on average): far above the others'.
    assert np.median(simulated.amount[third]) > 3 * np.median(simulated.amount[~third])


def test_a_terminal_drawn_stays_compromised_for_28_days_two_drawn_each_day() -> None:
    # One payment at each terminal each day, by customers no draw can pick (the population has
    # none of them), so that only the terminals' scenario marks them.
    terminals, days = 200, 70
    day = np.repeat(np.arange(days, dtype=np.int64), terminals)
    terminal = np.tile(np.arange(terminals, dtype=np.int64), days)
    customer = np.full(len(day), 10, dtype=np.int64)
    amount = np.full(len(day), 10.0)
    fraud, scenario = simulation._add_frauds(np.random.default_rng(1), (10, terminals), day, (customer, terminal), amount)
    assert set(np.unique(scenario).tolist()) == {0, 2}
    compromised = fraud.reshape(days, terminals).T.astype(bool)  # [terminal, day]
    # Day 0 is covered by day 0's draw alone; each later day by at most 28 draws of two.
    assert compromised[:, 0].sum() == 2
    for today in range(days):
        assert 2 <= compromised[:, today].sum() <= 2 * min(today + 1, simulation.SCENARIO_TERMINAL_DAYS)
    # A terminal's compromised days come in runs of 28 days or more (draws can overlap), but a
    # run cut by the last day.
    runs = 0
    for row in compromised:
        edges = np.diff(np.concatenate(([0], row.astype(np.int8), [0])))
        for begin, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            runs += 1
            assert end - begin >= simulation.SCENARIO_TERMINAL_DAYS or end == days
    # At most a run per draw; draws of terminals already compromised extend a run instead.
    assert days <= runs <= 2 * (days - 1)


def test_a_third_of_a_drawn_customers_payments_are_multiplied_by_5() -> None:
    # Three payments of 10.00 by each customer each day, at terminals no draw can pick.
    customers, days = 50, 40
    day = np.repeat(np.arange(days, dtype=np.int64), customers * 3)
    customer = np.tile(np.repeat(np.arange(customers, dtype=np.int64), 3), days)
    terminal = np.full(len(day), 5, dtype=np.int64)
    amount = np.full(len(day), 10.0)
    fraud, scenario = simulation._add_frauds(np.random.default_rng(2), (customers, 5), day, (customer, terminal), amount)
    third = scenario == 3
    assert (fraud == third).all()
    np.testing.assert_array_equal(amount[~third], 10.0)
    # 5x, or 25x for a payment drawn again by an overlapping draw of the same customer.
    assert set(np.unique(amount[third]).tolist()) <= {50.0, 250.0, 1250.0}
    # Day 0 only by its own draw of three customers, a third of whose 3 x 3 x 14 payments are chosen.
    assert len(np.unique(customer[third & (day == 0)])) <= 3
    per_draw = 3 * 3 * simulation.SCENARIO_CUSTOMER_DAYS // 3
    assert 0.5 * per_draw * (days - 1) < third.sum() <= per_draw * (days - 1)


def test_the_fraud_rate_is_the_handbooks() -> None:
    # The Handbook's proportions (a customer for two terminals), a steady state after 28 days:
    # about 0.8% of transactions fraudulent, mostly scenarios 2 and 3.
    simulated = simulate(customers=2_000, terminals=4_000, days=56, start=START, seed=3)
    rate = simulated.fraud.mean()
    assert 0.004 < rate < 0.03
    shares = np.bincount(simulated.scenario, minlength=4)[1:] / simulated.fraud.sum()
    assert shares[0] < 0.1
    assert shares[1] > 0.3
    assert shares[2] > 0.2


def test_the_csv_is_the_handbooks(simulated: Simulated) -> None:
    text = "".join(simulated.csv_lines())
    assert text == "".join(simulated.csv_lines(chunk=7_777))
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == HEADER
    assert rows[0] == HANDBOOK_HEADER.split(",")
    body = rows[1:]
    assert len(body) == len(simulated)
    midnight = datetime(START.year, START.month, START.day, tzinfo=UTC)
    for index in (0, 1, len(body) // 2, len(body) - 1):
        row = body[index]
        seconds = int(simulated.seconds[index])
        assert row == [
            str(index),
            (midnight + timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S"),
            str(simulated.customer[index]),
            str(simulated.terminal[index]),
            f"{simulated.amount[index]:.2f}",
            str(seconds),
            str(seconds // DAY_S),
            str(simulated.fraud[index]),
            str(simulated.scenario[index]),
        ]
    assert all(len(row) == len(HEADER) for row in body)


@pytest.mark.processes
async def test_the_simulate_command_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "simulated.csv"
    ran = await run_bastion(
        *("risk", "simulate", "--customers", "300", "--terminals", "500", "--days", "20"),
        *("--start", "2018-04-01", "--seed", "5", "--out", str(out)),
    )
    assert ran.returncode == 0, ran.stderr
    expected = simulate(customers=300, terminals=500, days=20, start=START, seed=5)
    assert ran.stdout.strip() == f"wrote {len(expected)} transactions ({int(expected.fraud.sum())} fraudulent) to {out}"
    assert out.read_text(encoding="utf-8") == "".join(expected.csv_lines())
