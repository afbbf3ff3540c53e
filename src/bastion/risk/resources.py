"""The objects the risk API returns: one definition each, for the answers the service builds
and the OpenAPI document (ADR 11)."""

from typing import Any, Literal

from typing_extensions import TypedDict

from bastion.risk.attributes import ListKind, ValueType
from bastion.risk.domain import RulesetStatus


class RuleResource(TypedDict):
    id: str
    rule: str
    action: Literal["allow", "block", "review", "request_3ds"]


class Ruleset(TypedDict):
    id: str
    object: Literal["risk.ruleset"]
    version: int
    status: RulesetStatus
    description: str | None
    rules: list[RuleResource]
    created: int
    activated: int | None
    retired: int | None
    livemode: bool


class RulesetList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Ruleset]
    has_more: bool


class RiskList(TypedDict):
    id: str
    object: Literal["risk.list"]
    alias: str
    name: str
    item_type: ListKind
    created: int
    livemode: bool


class RiskListList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[RiskList]
    has_more: bool


class DeletedRiskList(TypedDict):
    id: str
    object: Literal["risk.list"]
    deleted: Literal[True]


class RiskListItem(TypedDict):
    id: str
    object: Literal["risk.list_item"]
    list: str
    value: str
    created: int
    livemode: bool


class RiskListItemList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[RiskListItem]
    has_more: bool


class DeletedRiskListItem(TypedDict):
    id: str
    object: Literal["risk.list_item"]
    deleted: Literal[True]


class AttributeResource(TypedDict):
    name: str
    type: ValueType
    list_type: ListKind | None
    description: str


class AttributeList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[AttributeResource]
    has_more: bool


class RiskDecision(TypedDict):
    """What risk decided of an attempt, and why: no card data, only the rule and its values."""

    id: str
    object: Literal["risk.decision"]
    attempt: str
    payment_intent: str
    action: Literal["allow", "block", "review", "request_3ds"]
    risk_score: int
    risk_level: Literal["normal", "elevated", "highest", "not_assessed"]
    rule: str | None
    reasons: list[dict[str, Any]]
    ruleset: str | None
    shadow: dict[str, Any] | None
    model_version: str | None
    # The champion's score with its top feature contributions and its features, the challenger's
    # score in shadow; {"unusable": why} when the champion could not be loaded (docs/risk-ml.md).
    model: dict[str, Any] | None
    created: int
    livemode: bool


class RiskSettings(TypedDict):
    object: Literal["risk.settings"]
    budget_ms: int
    failure_policy: Literal["fail_open", "fail_closed"]
    livemode: bool
