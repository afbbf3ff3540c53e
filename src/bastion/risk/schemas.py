"""Request bodies of the risk API. Unknown fields are rejected, every field is bounded."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bastion.platform.http.schemas import FREE_TEXT, WHOLE
from bastion.risk.attributes import ListKind
from bastion.risk.domain import LIST_ITEM_LENGTH_MAX, RULES_PER_RULESET_MAX
from bastion.risk.rules import RULE_LENGTH_MAX

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Alias = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), FREE_TEXT]
Description = Annotated[str, StringConstraints(max_length=500), FREE_TEXT]


class RuleDraft(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: RuleId | None = Field(default=None, description="Named in decisions and backtests; rule_<n> when left out")
    rule: Annotated[str, StringConstraints(min_length=1, max_length=RULE_LENGTH_MAX), FREE_TEXT] = Field(
        description="block if :amount_in_usd: > 500 (docs/risk.md, The language)"
    )


class RulesetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    rules: list[RuleDraft] = Field(max_length=RULES_PER_RULESET_MAX)
    description: Description | None = None


class RulesetActivate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    shadow: bool = Field(default=False, description="Run it beside the live ruleset, deciding nothing, instead of live")


class RiskListCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    alias: Alias = Field(description="How rules name it: @alias")
    name: Name
    item_type: ListKind = Field(strict=False)  # a JSON string names the member


class RiskListItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    value: Annotated[str, StringConstraints(min_length=1, max_length=LIST_ITEM_LENGTH_MAX), FREE_TEXT]


class RiskSettingsUpdate(BaseModel):
    """Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid", strict=True)

    budget_ms: Annotated[int, Field(ge=1, le=10_000), WHOLE] | None = Field(
        default=None, description="An assessment's time budget"
    )
    failure_policy: Literal["fail_open", "fail_closed"] | None = Field(
        default=None, description="Past the budget: allow the attempt not assessed, or send it to review"
    )
