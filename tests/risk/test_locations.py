"""Locations from the shipped GeoLite2 City database, the time-zone check, and impossible travel
through real assessments: New York then London an hour later is impossible, New York twice is
not, IPv6 places too, and an attempt with no location gives missing values, not false."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Tenant
from bastion.risk import Assessor, Attempt, Locator, TravelLimits
from bastion.risk.signals import timezone_mismatch
from bastion.risk.travel import distance_km
from tests.support.platform import Credentials, Platform

NEW_YORK = "72.229.28.185"
NEW_YORK_AGAIN = "74.101.0.1"
LONDON = "185.86.151.11"
LONDON_V6 = "2a00:1450:4009::1"
LOCATOR = Locator()


def test_the_shipped_database_places_addresses() -> None:
    new_york = LOCATOR.locate(NEW_YORK)
    london = LOCATOR.locate(LONDON_V6)
    assert new_york is not None
    assert (new_york.country, new_york.city, new_york.time_zone) == ("US", "New York", "America/New_York")
    assert london is not None
    assert (london.country, london.city, london.time_zone) == ("GB", "London", "Europe/London")
    assert LOCATOR.locate("10.1.2.3") is None, "a private address is nowhere"
    assert LOCATOR.locate("not an address") is None
    assert (
        5_500
        < distance_km(float(new_york.latitude), float(new_york.longitude), float(london.latitude), float(london.longitude))
        < 5_650
    )


@pytest.mark.parametrize(
    ("device", "place", "mismatch"),
    [
        ("Europe/Paris", "Europe/Berlin", False),
        ("Europe/Paris", "America/New_York", True),
        ("Asia/Kolkata", "Asia/Kolkata", False),
        (None, "Europe/London", None),
        ("Mars/Olympus_Mons", "Europe/London", None),
        ("../../etc/passwd", "Europe/London", None),
    ],
)
def test_the_time_zone_check(device: str | None, place: str, mismatch: bool | None) -> None:
    assert timezone_mismatch(device, place, datetime(2026, 12, 5, 12, tzinfo=UTC)) is mismatch


def _attempt(card: str, ip: str | None, **fields: Any) -> Attempt:
    return Attempt(
        attempt_id=new_id("ch"),
        payment_intent_id=new_id("pi"),
        amount=2_000,
        currency="USD",
        card_brand="visa",
        card_funding="credit",
        card_fingerprint=card,
        card_last4="4242",
        livemode=False,
        ip_address=ip,
        **fields,
    )


async def _values(platform: Platform, decision_id: str) -> dict[str, Any]:
    async with platform.owner.transaction() as connection:
        values: dict[str, Any] = await connection.fetchval(
            "SELECT attributes->'values' FROM risk_decisions WHERE id = $1", decision_id
        )
    return values


async def test_impossible_travel_through_assessments(platform: Platform, merchant: Credentials) -> None:
    tenant = Tenant(merchant.merchant_id, livemode=False)
    assessor = Assessor(platform.services.database, budget_ms=5_000, locator=LOCATOR, travel_limits=TravelLimits(900, 50))
    actor = Actor(id="test")
    flown, stayed, unplaced = (f"{n:032x}" for n in (1, 2, 3))

    first = await assessor.assess(tenant, actor, _attempt(flown, NEW_YORK, signals={"device": {"timezone": "Europe/Paris"}}))
    await assessor.assess(tenant, actor, _attempt(stayed, NEW_YORK))
    await assessor.assess(tenant, actor, _attempt(unplaced, NEW_YORK))
    with platform.clock.shifted(timedelta(hours=1)):
        to_london = await assessor.assess(tenant, actor, _attempt(flown, LONDON))
        across_town = await assessor.assess(tenant, actor, _attempt(stayed, NEW_YORK_AGAIN))
        nowhere = await assessor.assess(tenant, actor, _attempt(unplaced, "10.1.2.3"))
    with platform.clock.shifted(timedelta(hours=10)):
        by_plane = await assessor.assess(tenant, actor, _attempt(flown, LONDON_V6))

    placed = await _values(platform, first.id)
    assert (placed["ip_country"], placed["ip_city"], placed["travel_speed_kmh"]) == ("US", "New York", None)
    assert Decimal(placed["ip_latitude"]) == Decimal("40.7605")
    assert placed["is_timezone_mismatch"] is True, "a Paris browser on a New York address"
    london = await _values(platform, to_london.id)
    assert london["is_impossible_travel"] is True
    assert 5_400 < Decimal(london["travel_speed_kmh"]) < 5_650
    town = await _values(platform, across_town.id)
    assert town["is_impossible_travel"] is False
    assert Decimal(town["travel_speed_kmh"]) < 50
    unknown = await _values(platform, nowhere.id)
    assert (unknown["ip_country"], unknown["travel_speed_kmh"], unknown["is_impossible_travel"]) == (None, None, None)
    plane = await _values(platform, by_plane.id)
    assert plane["is_impossible_travel"] is False, "London to London over 9 hours, IPv6: no travel to speak of"
