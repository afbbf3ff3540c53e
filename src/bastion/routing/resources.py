"""The objects the routing API returns: one definition each, for the answers the service builds,
the event payloads and the OpenAPI document (ADR 11). Rules are stored as they are shown."""

from typing import Literal

from typing_extensions import TypedDict


class PriorityStrategyResource(TypedDict):
    type: Literal["priority"]
    connector_accounts: list[str]


class SplitResource(TypedDict):
    connector_account: str
    percent: int


class VolumeSplitStrategyResource(TypedDict):
    type: Literal["volume_split"]
    splits: list[SplitResource]


class SuccessRateStrategyResource(TypedDict):
    type: Literal["success_rate"]
    connector_accounts: list[str]
    exploration_percent: int


StrategyResource = PriorityStrategyResource | VolumeSplitStrategyResource | SuccessRateStrategyResource


class RoutingRuleResource(TypedDict):
    # Null: the rule matches every payment.
    condition: str | None
    strategy: StrategyResource


class RoutingRules(TypedDict):
    """A version of a merchant's routing rules in one mode."""

    id: str
    object: Literal["routing_rules"]
    version: int
    status: Literal["draft", "live", "retired"]
    description: str | None
    rules: list[RoutingRuleResource]
    default: list[str]
    max_attempts: int
    metadata: dict[str, str]
    created: int
    # Unix seconds of the last activation and retirement, or null.
    activated: int | None
    retired: int | None
    livemode: bool


class RoutingRulesList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[RoutingRules]
    has_more: bool
