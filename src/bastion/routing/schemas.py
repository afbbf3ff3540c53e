"""Request bodies of the routing API. Unknown fields are rejected, every field is bounded; what
no schema can say (percents adding up to 100, an account named twice, a condition that reads,
accounts that can take payments) the service checks, each refusal with a code of its own."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bastion.platform.http.schemas import FREE_TEXT, WHOLE, MetadataChanges, id_schema
from bastion.risk import RULE_LENGTH_MAX
from bastion.routing.domain import (
    ACCOUNTS_PER_LIST_MAX,
    EXPLORATION_PERCENT_DEFAULT,
    EXPLORATION_PERCENT_MAX,
    MAX_ATTEMPTS_DEFAULT,
    MAX_ATTEMPTS_MAX,
    MAX_ATTEMPTS_MIN,
    RULES_MAX,
    SPLIT_PERCENT_TOTAL,
)

AccountId = Annotated[
    str, StringConstraints(max_length=64), Field(json_schema_extra=id_schema("ca"), description="A connector account id, ca_...")
]
Accounts = Annotated[list[AccountId], Field(min_length=1, max_length=ACCOUNTS_PER_LIST_MAX)]
Condition = Annotated[str, StringConstraints(min_length=1, max_length=RULE_LENGTH_MAX), FREE_TEXT]
Description = Annotated[str, StringConstraints(max_length=500), FREE_TEXT]


class PriorityStrategy(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["priority"]
    connector_accounts: Accounts = Field(description="Tried in this order")


class Split(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    connector_account: AccountId
    percent: Annotated[int, Field(ge=1, le=SPLIT_PERCENT_TOTAL), WHOLE]


class VolumeSplitStrategy(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["volume_split"]
    splits: list[Split] = Field(
        min_length=1, max_length=ACCOUNTS_PER_LIST_MAX, description="Percents adding up to 100; each payment drawn by its id"
    )


class SuccessRateStrategy(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["success_rate"]
    connector_accounts: Accounts = Field(description="Ranked by success rate; an account with too few outcomes keeps its place")
    exploration_percent: Annotated[int, Field(ge=0, le=EXPLORATION_PERCENT_MAX), WHOLE] = Field(
        default=EXPLORATION_PERCENT_DEFAULT, description="Payments sent first to another account than the best"
    )


class RoutingRule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    condition: Condition | None = Field(
        default=None, description=":currency: = 'EUR' and :amount: > 50000 (docs/routing.md); absent: every payment"
    )
    strategy: PriorityStrategy | VolumeSplitStrategy | SuccessRateStrategy = Field(discriminator="type")


class RoutingRulesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rules: list[RoutingRule] = Field(max_length=RULES_MAX, description="Tried in order; the first that matches decides")
    default: Accounts = Field(description="Tried in this order when no rule matches")
    max_attempts: Annotated[int, Field(ge=MAX_ATTEMPTS_MIN, le=MAX_ATTEMPTS_MAX), WHOLE] = Field(
        default=MAX_ATTEMPTS_DEFAULT, description="Connector accounts tried per payment, failovers included"
    )
    description: Description | None = None
    metadata: MetadataChanges = Field(default_factory=dict)
