"""Why risk refuses a request: one class per stable code."""

from bastion.kernel.errors import InvalidRequest


class RiskRuleInvalid(InvalidRequest):
    """A rule's text cannot be read or checked; the message names the rule, the line and the
    column, and the param names the rule (`rules[2][rule]`)."""

    code = "risk_rule_invalid"


class RiskRulesetUnexpectedState(InvalidRequest):
    """The ruleset's status does not allow what was asked (retiring a draft)."""

    code = "risk_ruleset_unexpected_state"


class RiskListAliasTaken(InvalidRequest):
    """Another list of this merchant and mode has this alias."""

    code = "risk_list_alias_taken"


class RiskListInUse(InvalidRequest):
    """The list is named by a live or shadow ruleset's rules: retire that ruleset first."""

    code = "risk_list_in_use"


class RiskListFull(InvalidRequest):
    """The list or the merchant's lists are at their limit (docs/risk.md, Limits)."""

    code = "risk_list_full"


class ModelChangeRefused(InvalidRequest):
    """A promotion, shadowing or rollback of fraud models the registry's state does not allow
    (docs/risk-ml.md, Lifecycle)."""

    code = "risk_model_change_refused"


class NotEnoughHistory(ValueError):
    """A window holds no rows, or no fraud, to learn or measure from."""
