"""Risk: the rules that decide, before any connector is called, whether an attempt goes on
(docs/risk.md). Its rules language is offered to other contexts too: routing writes its
conditions in it, over a catalogue of its own (docs/routing.md)."""

from bastion.risk.assessment import Assessor, Decision, decision_of
from bastion.risk.attributes import Attribute, ValueType
from bastion.risk.events import EVENT_TYPES
from bastion.risk.geo import Locator
from bastion.risk.iin import card_country
from bastion.risk.models import ModelShelf, compute_drift, label_fraud, terminal_of
from bastion.risk.rules import (
    RULE_LENGTH_MAX,
    Action,
    AttributeValue,
    Condition,
    RuleInvalid,
    check_condition,
    evaluate,
    parse_condition,
)
from bastion.risk.signals import Attempt
from bastion.risk.travel import TravelLimits
from bastion.risk.velocity import PostgresVelocity, Velocity
from bastion.risk.velocity_redis import RedisVelocity

__all__ = [
    "EVENT_TYPES",
    "RULE_LENGTH_MAX",
    "Action",
    "Assessor",
    "Attempt",
    "Attribute",
    "AttributeValue",
    "Condition",
    "Decision",
    "Locator",
    "ModelShelf",
    "PostgresVelocity",
    "RedisVelocity",
    "RuleInvalid",
    "TravelLimits",
    "ValueType",
    "Velocity",
    "card_country",
    "check_condition",
    "compute_drift",
    "decision_of",
    "evaluate",
    "label_fraud",
    "parse_condition",
    "terminal_of",
]
