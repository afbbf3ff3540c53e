"""Routing's rules without a database: the draws are deterministic per payment and uniform over
payments (a split's shares and the exploration share over 10,000 payment ids), success rates
rank the accounts that have enough outcomes and leave the others in place, and the window's
buckets."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bastion.routing.domain import (
    OUTCOME_BUCKET,
    SUCCESS_RATE_SAMPLE_MIN,
    SUCCESS_RATE_WINDOW,
    Rate,
    bucket_of,
    draw,
    explore,
    rank_by_success,
    split_order,
    window_start,
)

PAYMENTS = 10_000
# Three standard deviations of a share of 10,000 draws is at most 1.5 points; the ids are fixed,
# so the test is not left to chance either.
TOLERANCE = 0.02
PAYMENT_IDS = [f"pi_{number:026d}" for number in range(PAYMENTS)]


def test_a_draw_is_the_payments_own_and_each_purpose_draws_apart() -> None:
    assert draw("pi_1", "split", 100) == draw("pi_1", "split", 100)
    assert all(0 <= draw(payment_id, "split", 7) < 7 for payment_id in PAYMENT_IDS[:1000])
    same = sum(draw(payment_id, "split", 100) == draw(payment_id, "explore", 100) for payment_id in PAYMENT_IDS)
    assert same < PAYMENTS * 0.02, "the split's and the exploration's draws are independent"


@pytest.mark.parametrize("shares", [{"ca_a": 70, "ca_b": 30}, {"ca_a": 50, "ca_b": 30, "ca_c": 20}, {"ca_a": 1, "ca_b": 99}])
def test_a_volume_split_sends_each_account_its_share(shares: dict[str, int]) -> None:
    firsts = Counter(split_order(list(shares.items()), payment_id)[0][0] for payment_id in PAYMENT_IDS)
    for account, percent in shares.items():
        assert abs(firsts[account] / PAYMENTS - percent / 100) < TOLERANCE, (account, firsts)


def test_a_split_tries_the_drawn_account_first_then_the_others_by_share() -> None:
    splits = [("ca_small", 20), ("ca_large", 50), ("ca_middle", 30)]
    orders = {tuple(split_order(splits, payment_id)[0]) for payment_id in PAYMENT_IDS[:500]}
    assert orders == {
        ("ca_small", "ca_large", "ca_middle"),
        ("ca_large", "ca_middle", "ca_small"),
        ("ca_middle", "ca_large", "ca_small"),
    }
    order, inputs = split_order(splits, "pi_fixed")
    assert split_order(splits, "pi_fixed") == (order, inputs), "a resumed command picks the same"
    assert inputs["shares"] == dict(splits)
    assert inputs["out_of"] == 100
    bounds = {"ca_small": range(20), "ca_large": range(20, 70), "ca_middle": range(70, 100)}
    assert inputs["draw"] in bounds[order[0]]


def test_without_a_disabled_account_the_others_share_in_proportion() -> None:
    firsts = Counter(split_order([("ca_a", 60), ("ca_c", 20)], payment_id)[0][0] for payment_id in PAYMENT_IDS)
    assert abs(firsts["ca_a"] / PAYMENTS - 0.75) < TOLERANCE, firsts


def _rate(share: float, attempts: int = 100) -> Rate:
    return Rate(round(share * attempts), attempts)


def test_success_rates_rank_the_known_and_leave_the_unknown_in_place() -> None:
    accounts = ["ca_a", "ca_b", "ca_c", "ca_d"]
    rates = {
        "ca_a": _rate(0.80),
        "ca_b": Rate(SUCCESS_RATE_SAMPLE_MIN - 1, SUCCESS_RATE_SAMPLE_MIN - 1),  # perfect, but too few: unknown
        "ca_c": _rate(0.95),
        "ca_d": _rate(0.80),
    }
    assert rank_by_success(accounts, rates) == ["ca_c", "ca_b", "ca_a", "ca_d"], "ties keep their order"
    assert rank_by_success(accounts, {}) == accounts, "no outcomes: the merchant's order"
    assert Rate(0, SUCCESS_RATE_SAMPLE_MIN - 1).rate is None
    assert Rate(SUCCESS_RATE_SAMPLE_MIN - 5, SUCCESS_RATE_SAMPLE_MIN).rate == 0.75
    assert Rate(0, 0).rate is None


@pytest.mark.parametrize("percent", [0, 5, 20, 50])
def test_exploration_takes_its_share_and_draws_the_other_accounts_uniformly(percent: int) -> None:
    ranked = ["ca_best", "ca_second", "ca_third"]
    orders = [explore(ranked, payment_id, percent) for payment_id in PAYMENT_IDS]
    explored = [order for order, inputs in orders if inputs["exploration"]]
    assert abs(len(explored) / PAYMENTS - percent / 100) < TOLERANCE
    assert all(order == ranked for order, inputs in orders if not inputs["exploration"])
    if percent:
        firsts = Counter(order[0] for order in explored)
        assert set(firsts) == {"ca_second", "ca_third"}
        assert abs(firsts["ca_second"] / len(explored) - 0.5) < 0.1, firsts
        assert all(sorted(order) == sorted(ranked) and order[1] != order[0] for order in explored)
    assert explore(["ca_alone"], PAYMENT_IDS[0], 50)[0] == ["ca_alone"]


def test_the_window_ends_with_the_current_bucket() -> None:
    moment = datetime(2026, 12, 6, 10, 0, 59, 999_999, tzinfo=UTC)
    assert bucket_of(moment) == datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    assert bucket_of(moment + timedelta(microseconds=1)) == datetime(2026, 12, 6, 10, 1, tzinfo=UTC)
    assert window_start(moment) == bucket_of(moment) - SUCCESS_RATE_WINDOW + OUTCOME_BUCKET
    assert window_start(datetime(2026, 12, 6, 10, 29, 59, tzinfo=UTC)) == datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    assert window_start(datetime(2026, 12, 6, 10, 30, tzinfo=UTC)) == datetime(2026, 12, 6, 10, 1, tzinfo=UTC)
