"""Plans from the live routing rules, on the API's own role: the first matching rule decides
(three-valued: an unknown card country matches nothing), else the default list; disabled
accounts are skipped; each strategy's order; success rates read over the window with a moved
clock, exploration pinned by the payment's id; outcomes recorded concurrently lose no count; the
worker prunes what no window reads any more."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest

from bastion import bootstrap, routing
from bastion.platform.db import Actor, Database, Tenant
from bastion.platform.settings import Settings
from bastion.routing import RoutedPayment, RoutingPlan, Strategy
from bastion.routing.domain import MAX_ATTEMPTS_DEFAULT, SUCCESS_RATE_SAMPLE_MIN, SUCCESS_RATE_WINDOW, draw
from bastion.routing.service import success_rates
from tests.routing.test_rules_api import accounts, activate, create, priority
from tests.support.clock import ManualClock
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase

# Half a minute into a bucket.
START = datetime(2026, 12, 6, 10, 0, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
async def app_database(settings: Settings, test_database: TestDatabase, clock: ManualClock) -> AsyncIterator[Database]:
    """The API's role, on a clock the test moves."""
    database = bootstrap.role_database(settings, test_database.owner_url, test_database.roles.app, clock=clock)
    yield database
    await database.dispose()


@pytest.fixture
async def worker_database(settings: Settings, test_database: TestDatabase, clock: ManualClock) -> AsyncIterator[Database]:
    """The worker's role, on the same clock."""
    database = bootstrap.role_database(settings, test_database.owner_url, test_database.roles.worker, clock=clock)
    yield database
    await database.dispose()


def payment(
    payment_id: str = "pi_1",
    *,
    amount: int = 1000,
    currency: str = "EUR",
    card_brand: str = "visa",
    card_country: str | None = "FR",
    capture_method: Literal["automatic", "manual"] = "automatic",
) -> RoutedPayment:
    return RoutedPayment(payment_id, amount, currency, card_brand, card_country, capture_method)


def _tenant(merchant: Credentials) -> Tenant:
    return Tenant(merchant.merchant_id, livemode=False)


async def plan(database: Database, merchant: Credentials, routed: RoutedPayment) -> RoutingPlan:
    async with database.unit_of_work(_tenant(merchant), Actor(id="test")) as uow:
        return await routing.plan(uow, routed)


async def record(database: Database, merchant: Credentials, account: str, *, succeeded: bool, currency: str = "EUR") -> None:
    async with database.unit_of_work(_tenant(merchant), Actor(id="test")) as uow:
        await routing.record_outcome(uow, account, currency=currency, card_brand="visa", succeeded=succeeded)


async def _live(platform: Platform, merchant: Credentials, body: dict[str, Any]) -> str:
    async with platform.client(merchant) as client:
        rules = await activate(client, (await create(client, body))["id"])
    return str(rules["id"])


async def test_without_live_rules_there_is_no_candidate(
    platform: Platform, merchant: Credentials, app_database: Database
) -> None:
    async with platform.client(merchant) as client:
        [account] = await accounts(client, 1)
        await create(client, {"rules": [], "default": [account]})  # a draft decides nothing
    assert await plan(app_database, merchant, payment()) == RoutingPlan(None, None, None, (), MAX_ATTEMPTS_DEFAULT, {})


async def test_the_first_matching_rule_decides_else_the_default(
    platform: Platform, merchant: Credentials, app_database: Database
) -> None:
    async with platform.client(merchant) as client:
        a, b, c = await accounts(client, 3)
    rules_id = await _live(
        platform,
        merchant,
        {
            "rules": [
                priority(b, a, c, condition=":currency: = 'USD'"),
                priority(c, condition=":amount: >= 50000 and :capture_method: = 'manual'"),
                priority(c, b, condition=":card_country: = 'US'"),
                priority(b, condition=":card_brand: in ('amex', 'discover')"),
            ],
            "default": [a, b, c],
            "max_attempts": 2,
        },
    )
    cases = {
        "usd": (payment(currency="USD"), 0, (b, a)),
        "large manual": (payment(amount=60_000, capture_method="manual"), 1, (c,)),
        "large automatic": (payment(amount=60_000), None, (a, b)),
        "american card": (payment(card_country="US"), 2, (c, b)),
        # Unknown is not true: the country rule passes it by, and the brand's is written in lower case.
        "no country, amex": (payment(card_country=None, card_brand="AMEX"), 3, (b,)),
        "no country, visa": (payment(card_country=None), None, (a, b)),
    }
    for name, (routed, rule_index, candidates) in cases.items():
        made = await plan(app_database, merchant, routed)
        assert (made.ruleset_id, made.rule_index, made.strategy) == (rules_id, rule_index, Strategy.PRIORITY), name
        assert (made.candidates, made.max_attempts, made.inputs) == (candidates, 2, {}), name


async def test_disabled_accounts_are_skipped_and_a_rule_left_without_any_gives_way_to_the_default(
    platform: Platform, merchant: Credentials, app_database: Database
) -> None:
    async with platform.client(merchant) as client:
        a, b, c = await accounts(client, 3)
        await _live(platform, merchant, {"rules": [priority(b, c, condition=":currency: = 'USD'")], "default": [c, b, a]})
        await client.post(f"/v1/connector_accounts/{c}/disable")
        skipped = await plan(app_database, merchant, payment(currency="USD"))
        await client.post(f"/v1/connector_accounts/{b}/disable")
        fallen_back = await plan(app_database, merchant, payment(currency="USD"))
    assert (skipped.rule_index, skipped.candidates, skipped.inputs) == (0, (b,), {"unavailable": [c]})
    assert (fallen_back.rule_index, fallen_back.strategy, fallen_back.candidates) == (None, Strategy.PRIORITY, (a,))
    assert fallen_back.inputs == {"unavailable_rule": 0, "unavailable": [c, b]}


async def test_a_volume_split_picks_by_the_payments_id(platform: Platform, merchant: Credentials, app_database: Database) -> None:
    async with platform.client(merchant) as client:
        a, b, c = await accounts(client, 3)
    split = {"type": "volume_split", "splits": [{"connector_account": a, "percent": 70}, {"connector_account": b, "percent": 30}]}
    await _live(platform, merchant, {"rules": [{"strategy": split}], "default": [c]})
    plans = [await plan(app_database, merchant, payment(f"pi_split_{number}")) for number in range(300)]
    again = await plan(app_database, merchant, payment("pi_split_0"))
    assert again == plans[0], "a resumed command gets the same plan"
    assert {made.candidates for made in plans} == {(a, b), (b, a)}
    assert all((made.rule_index, made.strategy) == (0, Strategy.VOLUME_SPLIT) for made in plans)
    share = sum(made.candidates[0] == a for made in plans) / len(plans)
    assert abs(share - 0.7) < 0.1, share
    first = plans[0]
    assert first.inputs == {"draw": draw("pi_split_0", "split", 100), "out_of": 100, "shares": {a: 70, b: 30}}
    assert first.candidates[0] == (a if first.inputs["draw"] < 70 else b)


def _exploring(percent: int, *, explores: bool) -> str:
    """A payment id whose exploration draw falls in (or out of) `percent`: tests pin the draw."""
    return next(
        payment_id
        for payment_id in (f"pi_explore_{number}" for number in range(10_000))
        if (draw(payment_id, "explore", 100) < percent) == explores
    )


async def test_success_rates_rank_the_accounts_and_exploration_sends_some_payments_elsewhere(
    platform: Platform, merchant: Credentials, app_database: Database
) -> None:
    async with platform.client(merchant) as client:
        a, b, c = await accounts(client, 3)
    strategy = {"type": "success_rate", "connector_accounts": [a, b, c], "exploration_percent": 10}
    await _live(platform, merchant, {"rules": [{"strategy": strategy}], "default": [a], "max_attempts": 3})
    for account, successes, attempts in ((a, 10, 20), (b, 18, 20), (c, 5, 5)):
        for number in range(attempts):
            await record(app_database, merchant, account, succeeded=number < successes)
    await record(app_database, merchant, c, succeeded=True, currency="USD")
    steady = await plan(app_database, merchant, payment(_exploring(10, explores=False)))
    explored_id = _exploring(10, explores=True)
    explored = await plan(app_database, merchant, payment(explored_id))
    other_segment = await plan(app_database, merchant, payment(_exploring(10, explores=False), currency="USD"))
    # c's rate is unknown (5 outcomes): it keeps its third place; b's 90 % goes before a's 50 %.
    assert (steady.strategy, steady.candidates) == (Strategy.SUCCESS_RATE, (b, a, c))
    assert steady.inputs["exploration"] is False
    assert steady.inputs["rates"] == {
        a: {"successes": 10, "attempts": 20, "rate": 0.5},
        b: {"successes": 18, "attempts": 20, "rate": 0.9},
        c: {"successes": 5, "attempts": 5, "rate": None},
    }
    chosen = (a, c)[draw(explored_id, "explore_pick", 2)]
    assert explored.candidates == (chosen, *(account for account in (b, a, c) if account != chosen))
    assert explored.inputs["exploration"] is True
    assert explored.inputs["exploration_draw"] == draw(explored_id, "explore", 100) < 10
    assert other_segment.candidates == (a, b, c), "no outcomes in USD and visa: the merchant's order"


async def test_outcomes_recorded_concurrently_lose_no_count(
    platform: Platform, merchant: Credentials, app_database: Database
) -> None:
    recorders = 60
    await asyncio.gather(*(record(app_database, merchant, "ca_concurrent", succeeded=n % 3 == 0) for n in range(recorders)))
    async with app_database.unit_of_work(_tenant(merchant), Actor(id="test")) as uow:
        rates = await success_rates(uow, ["ca_concurrent"], currency="EUR", card_brand="visa")
    assert (rates["ca_concurrent"].attempts, rates["ca_concurrent"].successes) == (recorders, recorders // 3)


async def test_the_window_edges_with_a_moved_clock(
    platform: Platform, merchant: Credentials, app_database: Database, clock: ManualClock
) -> None:
    async def rate() -> tuple[int, float | None]:
        async with app_database.unit_of_work(_tenant(merchant), Actor(id="test")) as uow:
            found = (await success_rates(uow, ["ca_window"], currency="EUR", card_brand="visa"))["ca_window"]
        return found.attempts, found.rate

    for _ in range(SUCCESS_RATE_SAMPLE_MIN - 1):
        await record(app_database, merchant, "ca_window", succeeded=True)
    assert await rate() == (SUCCESS_RATE_SAMPLE_MIN - 1, None), "below the sample, the rate is unknown"
    clock.advance(timedelta(seconds=29))  # 10:00:59, the same bucket
    await record(app_database, merchant, "ca_window", succeeded=False)
    assert await rate() == (SUCCESS_RATE_SAMPLE_MIN, (SUCCESS_RATE_SAMPLE_MIN - 1) / SUCCESS_RATE_SAMPLE_MIN)
    # The 10:00 bucket is read until the window's last minute starts after it: up to 10:29:59.999999.
    bucket_end = START.replace(second=0) + SUCCESS_RATE_WINDOW
    clock.moment = bucket_end - timedelta(microseconds=1)
    assert (await rate())[0] == SUCCESS_RATE_SAMPLE_MIN
    clock.moment = bucket_end
    assert await rate() == (0, None)


async def test_the_worker_prunes_what_no_window_reads_in_bounded_batches(
    platform: Platform, merchant: Credentials, app_database: Database, worker_database: Database, clock: ManualClock
) -> None:
    old = [f"ca_old_{number}" for number in range(5)]
    for account in old:
        await record(app_database, merchant, account, succeeded=True)
    clock.advance(SUCCESS_RATE_WINDOW)
    await record(app_database, merchant, "ca_new", succeeded=True)
    pruned = await routing.prune_outcomes(worker_database, limit=2)
    async with platform.owner.transaction() as connection:
        left = await connection.fetch("SELECT account_id FROM routing_outcomes WHERE merchant_id = $1", merchant.merchant_id)
    assert pruned >= len(old)
    assert [row["account_id"] for row in left] == ["ca_new"]
