"""Velocity counters in both stores, PostgreSQL and Redis, each a real server: exact under
concurrency, windows open at their start to the millisecond, distinct cards, outcomes, and
missing values where an attempt has no subject or no rate. Every test runs against both."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bastion.kernel.errors import ConfigurationError
from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Database, Tenant
from bastion.platform.settings import Settings
from bastion.risk import PostgresVelocity, RedisVelocity, Velocity
from bastion.risk.velocity import Counted, Counters
from tests.support.platform import Credentials, Platform

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CARD = "0123456789abcdef0123456789abcdef"


def _attempt(at: datetime, *, card: str = CARD, amount: Decimal | None = Decimal("20.00"), **subjects: str) -> Counted:
    return Counted(
        attempt_id=new_id("ch"),
        subjects={"card": card, **subjects},
        card_fingerprint=card,
        amount_in_usd=amount,
        at=at,
    )


@pytest.fixture(params=["postgresql", "redis"])
async def velocity(request: pytest.FixtureRequest) -> AsyncIterator[Velocity]:
    store = PostgresVelocity() if request.param == "postgresql" else RedisVelocity(request.getfixturevalue("redis_url"))
    yield store
    await store.close()


async def _count(velocity: Velocity, database: Database, tenant: Tenant, attempt: Counted) -> Counters:
    async with database.unit_of_work(tenant, Actor(id="test")) as uow:
        return await velocity.count_attempt(uow, attempt)


async def test_concurrent_attempts_on_one_card_each_see_their_own_count(
    velocity: Velocity, platform: Platform, merchant: Credentials
) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    counted = await asyncio.gather(
        *(_count(velocity, platform.services.database, tenant, _attempt(START + timedelta(seconds=n))) for n in range(100))
    )
    assert sorted(counters["attempts_per_card_all_time"] for counters in counted) == list(range(1, 101))
    assert sorted(counters["attempts_per_card_hourly"] for counters in counted) == list(range(1, 101))


async def test_windows_are_open_at_their_start_to_the_millisecond(
    velocity: Velocity, platform: Platform, merchant: Credentials
) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    await _count(velocity, database, tenant, _attempt(START))
    inside = await _count(velocity, database, tenant, _attempt(START + timedelta(minutes=59, seconds=59, milliseconds=999)))
    edge = await _count(velocity, database, tenant, _attempt(START + timedelta(hours=1)))
    assert inside["attempts_per_card_hourly"] == 2, "59:59.999 after, the first attempt is in the last hour"
    assert edge["attempts_per_card_hourly"] == 2, "60:00.000 after, it is out"
    assert (edge["attempts_per_card_daily"], edge["attempts_per_card_weekly"], edge["attempts_per_card_all_time"]) == (3, 3, 3)
    assert edge["amount_in_usd_per_card_hourly"] == Decimal("40.00")
    week_later = await _count(velocity, database, tenant, _attempt(START + timedelta(days=7)))
    assert (week_later["attempts_per_card_weekly"], week_later["attempts_per_card_all_time"]) == (3, 4)


async def test_distinct_cards_per_ip_device_and_customer(velocity: Velocity, platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    shared = {"ip": "203.0.113.7", "device": "dev_1", "customer": "cus_1", "email": "Ada@Example.com"}
    cards = [f"{n:032x}" for n in range(3)]
    for n, card in enumerate([*cards, cards[0]]):
        last = await _count(velocity, database, tenant, _attempt(START + timedelta(minutes=n), card=card, **shared))
    assert last["card_count_for_ip_hourly"] == 3
    assert (last["card_count_for_device_all_time"], last["card_count_for_customer_daily"]) == (3, 3)
    assert last["attempts_per_email_hourly"] == 4, "an email counts whatever its case"
    assert last["attempts_per_card_hourly"] == 2
    later = await _count(velocity, database, tenant, _attempt(START + timedelta(hours=2), card=cards[1], ip="203.0.113.7"))
    assert (later["card_count_for_ip_hourly"], later["card_count_for_ip_daily"]) == (1, 3)


async def test_outcomes_count_as_charges_and_declines(velocity: Velocity, platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    attempts = [_attempt(START + timedelta(minutes=n)) for n in range(3)]
    for attempt, succeeded in zip(attempts, (True, False, True), strict=True):
        await _count(velocity, database, tenant, attempt)
        async with database.unit_of_work(tenant, Actor(id="test")) as uow:
            await velocity.record_outcome(uow, attempt.attempt_id, succeeded=succeeded)
            await velocity.record_outcome(uow, attempt.attempt_id, succeeded=not succeeded)  # an outcome is recorded once
    counted = await _count(velocity, database, tenant, _attempt(START + timedelta(minutes=5)))
    assert (counted["charges_per_card_hourly"], counted["declines_per_card_hourly"]) == (2, 1)
    assert (counted["charges_per_card_all_time"], counted["declines_per_card_all_time"]) == (2, 1)
    assert counted["attempts_per_card_hourly"] == 4


async def test_missing_subjects_and_unknown_amounts_give_missing_values(
    velocity: Velocity, platform: Platform, merchant: Credentials
) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    counted = await _count(velocity, platform.services.database, tenant, _attempt(START, amount=None))
    assert counted["attempts_per_card_hourly"] == 1
    assert counted["amount_in_usd_per_card_hourly"] is None
    assert counted["amount_in_usd_per_card_all_time"] is None
    assert counted["attempts_per_ip_hourly"] is None
    assert counted["card_count_for_device_daily"] is None


async def test_merchants_and_modes_count_apart(velocity: Velocity, platform: Platform, merchant: Credentials) -> None:
    other = await platform.merchant(name="Other")
    database = platform.services.database
    await _count(velocity, database, Tenant(merchant.merchant_id, livemode=False), _attempt(START))
    live = await _count(velocity, database, Tenant(merchant.merchant_id, livemode=True), _attempt(START))
    elsewhere = await _count(velocity, database, Tenant(other.merchant_id, livemode=False), _attempt(START))
    assert live["attempts_per_card_all_time"] == 1
    assert elsewhere["attempts_per_card_all_time"] == 1


async def test_a_device_is_new_to_a_card_it_never_saw(velocity: Velocity, platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    first = await _count(velocity, database, tenant, _attempt(START, device="dev_1"))
    again = await _count(velocity, database, tenant, _attempt(START + timedelta(minutes=1), device="dev_1"))
    other_card = await _count(velocity, database, tenant, _attempt(START + timedelta(minutes=2), card="f" * 32, device="dev_1"))
    assert (first["is_new_device"], again["is_new_device"], other_card["is_new_device"]) == (True, False, True)
    without = await _count(velocity, database, tenant, _attempt(START + timedelta(minutes=3)))
    assert without["is_new_device"] is None


async def test_redis_counts_a_resumed_attempt_once(redis_url: str, platform: Platform, merchant: Credentials) -> None:
    """A command resumed after a crash assesses its attempt again: Redis, outside the
    assessment's transaction, already counted it, and must not count it twice."""
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    velocity = RedisVelocity(redis_url)
    try:
        attempt = _attempt(START, device="dev_1", ip="203.0.113.7")
        first = await _count(velocity, database, tenant, attempt)
        again = await _count(velocity, database, tenant, attempt)
        later = await _count(velocity, database, tenant, _attempt(START + timedelta(minutes=1), ip="203.0.113.7"))
    finally:
        await velocity.close()
    assert again == first
    assert (first["attempts_per_card_all_time"], first["is_new_device"]) == (1, True)
    assert (later["attempts_per_ip_hourly"], later["amount_in_usd_per_ip_all_time"]) == (2, Decimal("40.00"))


def test_a_redis_url_is_checked_at_start_without_showing_its_password(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASTION_RISK_VELOCITY_REDIS_URL", "http://:hunter2-secret@127.0.0.1:6379/0")
    with pytest.raises(ConfigurationError, match="BASTION_RISK_VELOCITY_REDIS_URL") as refused:
        Settings.from_env()
    assert "hunter2" not in str(refused.value)
    monkeypatch.setenv("BASTION_RISK_VELOCITY_REDIS_URL", "rediss://:hunter2-secret@redis.internal:6380/2")
    assert Settings.from_env().risk_velocity_redis_url == "rediss://:hunter2-secret@redis.internal:6380/2"
    monkeypatch.setenv("BASTION_RISK_VELOCITY_REDIS_URL", "")
    assert Settings.from_env().risk_velocity_redis_url is None


async def test_events_past_the_week_are_pruned_and_all_time_stays(
    velocity: Velocity, platform: Platform, merchant: Credentials
) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    for n in range(3):
        await _count(velocity, database, tenant, _attempt(START + timedelta(minutes=n), device="dev_1"))
    later = await _count(velocity, database, tenant, _attempt(START + timedelta(days=9), device="dev_1"))
    assert (later["attempts_per_card_weekly"], later["attempts_per_card_all_time"]) == (1, 4)
    assert (later["card_count_for_device_weekly"], later["card_count_for_device_all_time"]) == (1, 1)
    async with platform.owner.transaction() as connection:
        kept = await connection.fetchval(
            "SELECT count(*) FROM risk_velocity_events WHERE merchant_id = $1 AND subject = $2",
            merchant.merchant_id,
            f"card:{CARD}",
        )
    # PostgreSQL kept the one event of the last week; Redis keeps its events in Redis.
    assert kept == (1 if isinstance(velocity, PostgresVelocity) else 0)
