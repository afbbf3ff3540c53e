"""Why routing refuses a request: one class per stable code."""

from bastion.kernel.errors import InvalidRequest


class RoutingRuleInvalid(InvalidRequest):
    """A rule's condition cannot be read or checked (the message names the rule, the line and the
    column), a volume split's percents do not add up to 100, or a list names an account twice;
    `param` names the field (`rules[2][condition]`)."""

    code = "routing_rule_invalid"


class RoutingAccountUnavailable(InvalidRequest):
    """A connector account the routing rules name is not an enabled account of the merchant in
    this mode (unknown, another merchant's or mode's, or disabled); `param` names the field."""

    code = "routing_account_unavailable"
