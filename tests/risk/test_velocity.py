"""Velocity counters on the real database: exact under concurrency, windows open at their start
to the millisecond, distinct cards, outcomes, and missing values where an attempt has no subject
or no rate."""

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Database, Tenant
from bastion.risk.velocity import Counted, Counters, count_attempt, record_outcome
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


async def _count(database: Database, tenant: Tenant, attempt: Counted) -> Counters:
    async with database.unit_of_work(tenant, Actor(id="test")) as uow:
        return await count_attempt(uow, attempt)


async def test_concurrent_attempts_on_one_card_each_see_their_own_count(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    counted = await asyncio.gather(
        *(_count(platform.services.database, tenant, _attempt(START + timedelta(seconds=n))) for n in range(100))
    )
    assert sorted(counters["attempts_per_card_all_time"] for counters in counted) == list(range(1, 101))
    assert sorted(counters["attempts_per_card_hourly"] for counters in counted) == list(range(1, 101))


async def test_windows_are_open_at_their_start_to_the_millisecond(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    await _count(database, tenant, _attempt(START))
    inside = await _count(database, tenant, _attempt(START + timedelta(minutes=59, seconds=59, milliseconds=999)))
    edge = await _count(database, tenant, _attempt(START + timedelta(hours=1)))
    assert inside["attempts_per_card_hourly"] == 2, "59:59.999 after, the first attempt is in the last hour"
    assert edge["attempts_per_card_hourly"] == 2, "60:00.000 after, it is out"
    assert (edge["attempts_per_card_daily"], edge["attempts_per_card_weekly"], edge["attempts_per_card_all_time"]) == (3, 3, 3)
    assert edge["amount_in_usd_per_card_hourly"] == Decimal("40.00")
    week_later = await _count(database, tenant, _attempt(START + timedelta(days=7)))
    assert (week_later["attempts_per_card_weekly"], week_later["attempts_per_card_all_time"]) == (3, 4)


async def test_distinct_cards_per_ip_device_and_customer(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    shared = {"ip": "203.0.113.7", "device": "dev_1", "customer": "cus_1", "email": "Ada@Example.com"}
    cards = [f"{n:032x}" for n in range(3)]
    for n, card in enumerate([*cards, cards[0]]):
        last = await _count(database, tenant, _attempt(START + timedelta(minutes=n), card=card, **shared))
    assert last["card_count_for_ip_hourly"] == 3
    assert (last["card_count_for_device_all_time"], last["card_count_for_customer_daily"]) == (3, 3)
    assert last["attempts_per_email_hourly"] == 4, "an email counts whatever its case"
    assert last["attempts_per_card_hourly"] == 2
    later = await _count(database, tenant, _attempt(START + timedelta(hours=2), card=cards[1], ip="203.0.113.7"))
    assert (later["card_count_for_ip_hourly"], later["card_count_for_ip_daily"]) == (1, 3)


async def test_outcomes_count_as_charges_and_declines(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    database = platform.services.database
    attempts = [_attempt(START + timedelta(minutes=n)) for n in range(3)]
    for attempt, succeeded in zip(attempts, (True, False, True), strict=True):
        await _count(database, tenant, attempt)
        async with database.unit_of_work(tenant, Actor(id="test")) as uow:
            await record_outcome(uow, attempt.attempt_id, succeeded=succeeded)
            await record_outcome(uow, attempt.attempt_id, succeeded=not succeeded)  # an outcome is recorded once
    counted = await _count(database, tenant, _attempt(START + timedelta(minutes=5)))
    assert (counted["charges_per_card_hourly"], counted["declines_per_card_hourly"]) == (2, 1)
    assert (counted["charges_per_card_all_time"], counted["declines_per_card_all_time"]) == (2, 1)
    assert counted["attempts_per_card_hourly"] == 4


async def test_missing_subjects_and_unknown_amounts_give_missing_values(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    counted = await _count(platform.services.database, tenant, _attempt(START, amount=None))
    assert counted["attempts_per_card_hourly"] == 1
    assert counted["amount_in_usd_per_card_hourly"] is None
    assert counted["amount_in_usd_per_card_all_time"] is None
    assert counted["attempts_per_ip_hourly"] is None
    assert counted["card_count_for_device_daily"] is None


async def test_merchants_and_modes_count_apart(platform: Platform, merchant: Credentials) -> None:
    other = await platform.merchant(name="Other")
    database = platform.services.database
    await _count(database, Tenant(merchant.merchant_id, livemode=False), _attempt(START))
    live = await _count(database, Tenant(merchant.merchant_id, livemode=True), _attempt(START))
    elsewhere = await _count(database, Tenant(other.merchant_id, livemode=False), _attempt(START))
    assert live["attempts_per_card_all_time"] == 1
    assert elsewhere["attempts_per_card_all_time"] == 1
