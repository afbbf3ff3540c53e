"""Impossible travel (docs/risk.md, Locations): per card, customer and device, the last located
attempt; the speed needed to come from there is the distance less both places' accuracy radii,
over the time between. Too fast (900 km/h by default) over far enough (50 km) is impossible.
An attempt with no location, or a subject never located before, gives missing values."""

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from bastion.platform.db import UnitOfWork
from bastion.risk import repository
from bastion.risk.geo import Location
from bastion.risk.rules import AttributeValue

TRAVEL_SUBJECTS = ("card", "customer", "device")
_EARTH_RADIUS_KM = 6371.0088
# Two attempts in the same instant: as if a second apart, so that a distance still makes a speed.
_SHORTEST_HOURS = 1 / 3600


@dataclass(frozen=True, slots=True)
class TravelLimits:
    speed_kmh: int = 900
    distance_km: int = 50


DEFAULT_TRAVEL_LIMITS = TravelLimits()


def distance_km(a_latitude: float, a_longitude: float, b_latitude: float, b_longitude: float) -> float:
    """Great-circle distance (haversine) on the mean Earth radius."""
    phi_a, phi_b = math.radians(a_latitude), math.radians(b_latitude)
    d_phi, d_lambda = phi_b - phi_a, math.radians(b_longitude - a_longitude)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi_a) * math.cos(phi_b) * math.sin(d_lambda / 2) ** 2
    return 2 * _EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


async def travel(
    uow: UnitOfWork, subjects: list[str], here: Location | None, at: datetime, limits: TravelLimits
) -> dict[str, AttributeValue]:
    """`travel_speed_kmh` (the fastest of the subjects') and `is_impossible_travel`; the place is
    then each subject's last located attempt. The subjects' velocity rows are held: in turn."""
    if here is None or not subjects:
        return {"travel_speed_kmh": None, "is_impossible_travel": None}
    previous = await repository.move_subjects(
        uow.connection,
        uow.tenant,
        sorted(subjects),
        latitude=here.latitude,
        longitude=here.longitude,
        accuracy_km=here.accuracy_km,
        at=at,
    )
    fastest: float | None = None
    impossible = False
    for row in previous:
        apart_km = distance_km(float(row["latitude"]), float(row["longitude"]), float(here.latitude), float(here.longitude))
        moved_km = max(0.0, apart_km - row["accuracy_km"] - here.accuracy_km)
        hours = max((at - row["at"]).total_seconds() / 3600, _SHORTEST_HOURS)
        speed = moved_km / hours
        fastest = speed if fastest is None else max(fastest, speed)
        impossible = impossible or (speed > limits.speed_kmh and moved_km >= limits.distance_km)
    if fastest is None:
        return {"travel_speed_kmh": None, "is_impossible_travel": None}
    return {"travel_speed_kmh": Decimal(round(fastest)), "is_impossible_travel": impossible}
