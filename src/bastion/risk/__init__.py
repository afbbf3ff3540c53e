"""Risk: the rules that decide, before any connector is called, whether an attempt goes on
(docs/risk.md)."""

from bastion.risk.assessment import Assessor, Decision, decision_of
from bastion.risk.events import EVENT_TYPES
from bastion.risk.geo import Locator
from bastion.risk.rules import Action
from bastion.risk.signals import Attempt
from bastion.risk.travel import TravelLimits
from bastion.risk.velocity import PostgresVelocity, Velocity
from bastion.risk.velocity_redis import RedisVelocity

__all__ = [
    "EVENT_TYPES",
    "Action",
    "Assessor",
    "Attempt",
    "Decision",
    "Locator",
    "PostgresVelocity",
    "RedisVelocity",
    "TravelLimits",
    "Velocity",
    "decision_of",
]
