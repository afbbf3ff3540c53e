"""Replaying a decision (docs/risk.md, Replays): its stored ruleset evaluated again over the
attribute values and list hits it was made from, without reading anything that may have changed
since (velocity, lists, the customer). The same decision comes out, or the replay says where it
differs."""

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bastion.platform.db import Connection
from bastion.risk import repository
from bastion.risk.assessment import FAIL_CLOSED, parsed_ruleset, verdict
from bastion.risk.attributes import CATALOGUE, ValueType
from bastion.risk.rules import Action, AttributeValue


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str
    rule: str | None


@dataclass(frozen=True, slots=True)
class Replayed:
    decision: str
    stored: Verdict
    recomputed: Verdict
    shadow_stored: Verdict | None
    shadow_recomputed: Verdict | None

    @property
    def same(self) -> bool:
        return self.stored == self.recomputed and self.shadow_stored == self.shadow_recomputed


def typed_values(values: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The stored values as the evaluation read them: numbers were stored as text, exactly."""
    typed: dict[str, AttributeValue] = {}
    for name, value in values.items():
        number = name in CATALOGUE and CATALOGUE[name].type == ValueType.NUMBER and isinstance(value, str)
        typed[name] = Decimal(value) if number else value
    return typed


async def replay(connection: Connection, decision_id: str) -> Replayed | None:
    """The decision replayed, or None if there is no such decision (any merchant's: as the owner)."""
    row = await repository.decision_any_tenant(connection, decision_id)
    if row is None:
        return None
    stored = Verdict(row["action"], row["rule_id"])
    shadow = row["shadow"]
    shadow_stored = None if shadow is None else Verdict(shadow["action"], shadow["rule_id"])
    if row["risk_level"] == "not_assessed":
        # The failure policy decided, from nothing but itself.
        policy = row["reasons"][0]["id"]
        return Replayed(decision_id, stored, Verdict(Action.REVIEW if policy == FAIL_CLOSED else Action.ALLOW, None), None, None)
    attributes = row["attributes"]
    values = typed_values(attributes["values"])
    hits = {(alias, value) for alias, value in attributes["list_hits"]}
    blocked = bool(attributes.get("always_blocked", False))
    rulesets = await repository.rulesets_any_tenant(
        connection, [ruleset for ruleset in (row["ruleset_id"], None if shadow is None else shadow["ruleset_id"]) if ruleset]
    )
    live = parsed_ruleset(rulesets.get(row["ruleset_id"]))
    recomputed = Verdict(*verdict(live, values, hits, always_blocked=blocked))
    shadow_recomputed = None
    if shadow is not None:
        shadow_recomputed = Verdict(
            *verdict(parsed_ruleset(rulesets[shadow["ruleset_id"]]), values, hits, always_blocked=blocked)
        )
    return Replayed(decision_id, stored, recomputed, shadow_stored, shadow_recomputed)
