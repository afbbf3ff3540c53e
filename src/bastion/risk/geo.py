"""Where an IP address is, by an offline GeoIP city database in MaxMind's format: the GeoLite2
City database the `maxminddb-geolite2` package ships, or a current MaxMind or DB-IP file named
by BASTION_GEOIP_DATABASE (docs/risk.md, Locations). Read from memory-mapped pages: a lookup
costs microseconds and no I/O once the pages are warm."""

import importlib.resources
import ipaddress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import maxminddb

from bastion.kernel.errors import ConfigurationError

_PACKAGED = ("_maxminddb_geolite2", "GeoLite2-City.mmdb")


@dataclass(frozen=True, slots=True)
class Location:
    country: str | None
    city: str | None
    latitude: Decimal
    longitude: Decimal
    accuracy_km: int
    time_zone: str | None


class Locator:
    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            package, name = _PACKAGED
            path = Path(str(importlib.resources.files(package) / name))
        try:
            self._reader = maxminddb.open_database(str(path), maxminddb.MODE_MMAP)
        except (OSError, maxminddb.InvalidDatabaseError) as error:
            raise ConfigurationError(f"BASTION_GEOIP_DATABASE: {path} is not a readable MaxMind database: {error}") from None

    def locate(self, address: str) -> Location | None:
        """The address's location, or None for an address the database does not place (private
        ranges, or too coarse to have coordinates) or that is not an address."""
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return None
        record: Any = self._reader.get(address)
        if not isinstance(record, dict):
            return None
        place = record.get("location") or {}
        if "latitude" not in place or "longitude" not in place:
            return None
        return Location(
            country=(record.get("country") or {}).get("iso_code"),
            city=((record.get("city") or {}).get("names") or {}).get("en"),
            latitude=Decimal(str(place["latitude"])),
            longitude=Decimal(str(place["longitude"])),
            accuracy_km=int(place.get("accuracy_radius", 0)),
            time_zone=place.get("time_zone"),
        )
