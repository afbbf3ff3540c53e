"""Use cases of the routing context. Each takes the caller's unit of work and never commits;
the worker's pruning takes its database."""

import functools
import secrets
from collections.abc import Sequence
from typing import Any

from bastion import audit, connectors, events
from bastion.kernel.clock import unix_seconds, unix_seconds_or_none
from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.metadata import merge_metadata
from bastion.platform.db import AnyRow, Database, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors
from bastion.risk import AttributeValue, Condition, RuleInvalid, check_condition, evaluate, parse_condition
from bastion.routing import repository
from bastion.routing.domain import (
    CATALOGUE,
    CATALOGUE_LISTED_AT,
    MAX_ATTEMPTS_DEFAULT,
    OUTCOME_STRIPES,
    PRUNE_BATCH_MAX,
    SPLIT_PERCENT_TOTAL,
    Rate,
    RoutedPayment,
    RoutingPlan,
    RoutingRulesStatus,
    Strategy,
    bucket_of,
    explore,
    rank_by_success,
    split_order,
    window_start,
)
from bastion.routing.errors import RoutingAccountUnavailable, RoutingRuleInvalid
from bastion.routing.events import ROUTING_RULES_ACTIVATED, ROUTING_RULES_CREATED
from bastion.routing.resources import (
    PriorityStrategyResource,
    RoutingRuleResource,
    RoutingRules,
    RoutingRulesList,
    SplitResource,
    StrategyResource,
    SuccessRateStrategyResource,
    VolumeSplitStrategyResource,
)
from bastion.routing.schemas import PriorityStrategy, RoutingRulesCreate, SuccessRateStrategy, VolumeSplitStrategy

PREFIX = "rr"
ACCOUNT_PREFIX = "ca"
# Conditions parsed once per process: a version's rules never change, and the live ones are
# evaluated on every payment.
CONDITIONS_CACHED_MAX = 1_024


def rules_resource(row: AnyRow) -> RoutingRules:
    return RoutingRules(
        id=row["id"],
        object="routing_rules",
        version=row["version"],
        status=row["status"],
        description=row["description"],
        rules=row["rules"],
        default=row["default_accounts"],
        max_attempts=row["max_attempts"],
        metadata=row["metadata"],
        created=unix_seconds(row["created_at"]),
        activated=unix_seconds_or_none(row["activated_at"]),
        retired=unix_seconds_or_none(row["retired_at"]),
        livemode=row["livemode"],
    )


# Checking what a version names.


def _stored(strategy: PriorityStrategy | VolumeSplitStrategy | SuccessRateStrategy) -> StrategyResource:
    match strategy:
        case VolumeSplitStrategy(splits=splits):
            return VolumeSplitStrategyResource(
                type="volume_split",
                splits=[SplitResource(connector_account=split.connector_account, percent=split.percent) for split in splits],
            )
        case SuccessRateStrategy(connector_accounts=accounts, exploration_percent=exploration_percent):
            return SuccessRateStrategyResource(
                type="success_rate", connector_accounts=accounts, exploration_percent=exploration_percent
            )
        case PriorityStrategy(connector_accounts=accounts):
            return PriorityStrategyResource(type="priority", connector_accounts=accounts)


def _check_condition(index: int, text: str) -> None:
    try:
        check_condition(parse_condition(text), {}, CATALOGUE, listed_at=CATALOGUE_LISTED_AT)
    except RuleInvalid as refused:
        raise RoutingRuleInvalid(f"Rule {index + 1}: {refused}", param=f"rules[{index}][condition]") from None


def _accounts_of(strategy: StrategyResource, param: str) -> list[tuple[str, str]]:
    """(param, account id) of every account the strategy names, in its order."""
    if strategy["type"] == "volume_split":
        return [
            (f"{param}[splits][{j}][connector_account]", split["connector_account"]) for j, split in enumerate(strategy["splits"])
        ]
    return [(f"{param}[connector_accounts][{j}]", account) for j, account in enumerate(strategy["connector_accounts"])]


def _ids_of(strategy: StrategyResource) -> list[str]:
    return [account for _, account in _accounts_of(strategy, "")]


def _lists(rules: Sequence[RoutingRuleResource], default: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Each list of accounts a version names, as (param, account id): the rules' in order, then the default."""
    return [
        *(_accounts_of(rule["strategy"], f"rules[{index}][strategy]") for index, rule in enumerate(rules)),
        [(f"default[{j}]", account) for j, account in enumerate(default)],
    ]


def _check_lists(rules: Sequence[RoutingRuleResource], default: Sequence[str]) -> None:
    """Each list names an account once; a volume split's percents add up to 100."""
    for accounts in _lists(rules, default):
        seen: set[str] = set()
        for param, account in accounts:
            if account in seen:
                raise RoutingRuleInvalid(f"Invalid {param}: the list names this connector account already", param=param)
            seen.add(account)
    for index, rule in enumerate(rules):
        strategy = rule["strategy"]
        if strategy["type"] == "volume_split":
            total = sum(split["percent"] for split in strategy["splits"])
            if total != SPLIT_PERCENT_TOTAL:
                raise RoutingRuleInvalid(
                    f"Rule {index + 1}: a volume split's percents add up to {SPLIT_PERCENT_TOTAL}, not {total}",
                    param=f"rules[{index}][strategy][splits]",
                )


async def _check_accounts(uow: UnitOfWork, rules: Sequence[RoutingRuleResource], default: Sequence[str]) -> None:
    """Every account named is an enabled account of the merchant in this mode; a refusal names
    the first field that is not, never repeating what was sent."""
    named = [pair for accounts in _lists(rules, default) for pair in accounts]
    enabled = await connectors.enabled_accounts(uow, [account for _, account in named if is_id(account, ACCOUNT_PREFIX)])
    for param, account in named:
        if account not in enabled:
            raise RoutingAccountUnavailable(
                f"Invalid {param}: no enabled connector account of this merchant in this mode has this id", param=param
            )


# Versions.


def _audit(uow: UnitOfWork, action: str, rules_id: str, *, before: RoutingRules | None, after: RoutingRules) -> None:
    audit.record(
        uow,
        action_type=f"routing_rules.{action}",
        resource_type="routing_rules",
        resource_id=rules_id,
        before=before,
        after=after,
    )


async def create_rules(uow: UnitOfWork, request: RoutingRulesCreate) -> RoutingRules:
    """A new draft, every rule and account checked now, numbered after the merchant's last
    version in this mode."""
    for index, rule in enumerate(request.rules):
        if rule.condition is not None:
            _check_condition(index, rule.condition)
    rules = [RoutingRuleResource(condition=rule.condition, strategy=_stored(rule.strategy)) for rule in request.rules]
    _check_lists(rules, request.default)
    await _check_accounts(uow, rules, request.default)
    await repository.lock_rules(uow.connection, uow.tenant)
    row = await repository.insert_rules(
        uow.connection,
        uow.tenant,
        rules_id=new_id(PREFIX),
        description=request.description,
        rules=[dict(rule) for rule in rules],
        default_accounts=request.default,
        max_attempts=request.max_attempts,
        metadata=merge_metadata({}, request.metadata),
        created_at=uow.now(),
    )
    resource = rules_resource(row)
    _audit(uow, "create", row["id"], before=None, after=resource)
    events.emit(uow, ROUTING_RULES_CREATED, resource)
    return resource


async def _rules(uow: UnitOfWork, rules_id: str, *, for_update: bool = False) -> AnyRow:
    row = (
        await repository.get_rules(uow.connection, uow.tenant, rules_id, for_update=for_update)
        if is_id(rules_id, PREFIX)
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such routing rules: '{rules_id}'", param="id")
    return row


async def retrieve_rules(uow: UnitOfWork, rules_id: str) -> RoutingRules:
    return rules_resource(await _rules(uow, rules_id))


async def retrieve_live_rules(uow: UnitOfWork) -> RoutingRules:
    row = await repository.live_rules(uow.connection, uow.tenant)
    if row is None:
        raise ResourceMissing("No routing rules are live in this mode: payments go where they would without routing")
    return rules_resource(row)


async def list_rules(uow: UnitOfWork, request: PageRequest) -> RoutingRulesList:
    await check_cursors(
        request,
        prefix=PREFIX,
        noun="routing rules",
        exists=lambda cursor: repository.rules_exist(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_rules(uow.connection, uow.tenant, request)
    return RoutingRulesList(
        object="list", url="/v1/routing_rules", data=[rules_resource(row) for row in page.rows], has_more=page.has_more
    )


async def activate_rules(uow: UnitOfWork, rules_id: str) -> RoutingRules:
    """Make the version live; the one live before is retired. Activating a retired version is the
    rollback; activating the live one changes nothing. Its accounts are checked again: one may
    have been disabled since the version was made."""
    await repository.lock_rules(uow.connection, uow.tenant)
    row = await _rules(uow, rules_id, for_update=True)
    if row["status"] == RoutingRulesStatus.LIVE:
        return rules_resource(row)
    await _check_accounts(uow, row["rules"], row["default_accounts"])
    now = uow.now()
    holder = await repository.live_rules(uow.connection, uow.tenant)
    if holder is not None:
        retired = await repository.set_status(uow.connection, uow.tenant, holder["id"], RoutingRulesStatus.RETIRED, now)
        _audit(uow, "retire", holder["id"], before=rules_resource(holder), after=rules_resource(retired))
    live = await repository.set_status(uow.connection, uow.tenant, rules_id, RoutingRulesStatus.LIVE, now)
    resource = rules_resource(live)
    _audit(uow, "activate", rules_id, before=rules_resource(row), after=resource)
    events.emit(uow, ROUTING_RULES_ACTIVATED, resource)
    return resource


# Plans.


@functools.lru_cache(maxsize=CONDITIONS_CACHED_MAX)
def _condition(text: str) -> Condition:
    return parse_condition(text)


def _in_no_list(_alias: str, _value: AttributeValue) -> bool:
    # Routing's conditions name no list: the checker refused any when the version was made.
    return False


def _matching_rule(rules: Sequence[RoutingRuleResource], payment: RoutedPayment) -> int | None:
    values = payment.values()
    for index, rule in enumerate(rules):
        condition = rule["condition"]
        if condition is None or evaluate(_condition(condition), values, _in_no_list) is True:
            return index
    return None


async def plan(uow: UnitOfWork, payment: RoutedPayment) -> RoutingPlan:
    """Where the merchant's live routing rules send `payment`: the first rule whose condition is
    true (unknown is not true: docs/routing.md), else the default list; its strategy orders the
    accounts that can take payments now, at most `max_attempts` of them. A rule none of whose
    accounts is enabled any more gives way to the default list. No live rules: no candidate."""
    row = await repository.live_rules(uow.connection, uow.tenant)
    if row is None:
        return RoutingPlan(None, None, None, (), MAX_ATTEMPTS_DEFAULT)
    rules: list[RoutingRuleResource] = row["rules"]
    default = PriorityStrategyResource(type="priority", connector_accounts=row["default_accounts"])
    index = _matching_rule(rules, payment)
    strategy = default if index is None else rules[index]["strategy"]
    # The default's too: it takes over from a rule left without an enabled account.
    enabled = await connectors.enabled_accounts(uow, [*_ids_of(strategy), *_ids_of(default)])
    inputs: dict[str, Any] = {}
    if index is not None and not any(account in enabled for account in _ids_of(strategy)):
        inputs["unavailable_rule"] = index
        index, strategy = None, default
    named = _ids_of(strategy)
    if unavailable := [account for account in named if account not in enabled]:
        inputs["unavailable"] = unavailable
    order, decided = await _ordered(uow, strategy, [account for account in named if account in enabled], payment)
    return RoutingPlan(
        ruleset_id=row["id"],
        rule_index=index,
        strategy=Strategy(strategy["type"]),
        candidates=tuple(order[: row["max_attempts"]]),
        max_attempts=row["max_attempts"],
        inputs=inputs | decided,
    )


async def _ordered(
    uow: UnitOfWork, strategy: StrategyResource, accounts: list[str], payment: RoutedPayment
) -> tuple[list[str], dict[str, Any]]:
    """The enabled `accounts` in the order the strategy tries them, and what decided it."""
    if not accounts:
        return [], {}
    if strategy["type"] == "volume_split":
        shares = [(split["connector_account"], split["percent"]) for split in strategy["splits"]]
        return split_order([(account, percent) for account, percent in shares if account in accounts], payment.payment_id)
    if strategy["type"] == "success_rate":
        rates = await success_rates(uow, accounts, currency=payment.currency, card_brand=payment.card_brand)
        order, explored = explore(rank_by_success(accounts, rates), payment.payment_id, strategy["exploration_percent"])
        shown = {
            account: {"successes": rate.successes, "attempts": rate.attempts, "rate": rate.rate}
            for account, rate in rates.items()
        }
        return order, {"rates": shown, **explored}
    return accounts, {}


# Success rates.


async def success_rates(uow: UnitOfWork, accounts: Sequence[str], *, currency: str, card_brand: str) -> dict[str, Rate]:
    """Each account's authorizations in the segment over the window that ends now."""
    counted = await repository.outcomes(
        uow.connection, uow.tenant, accounts, currency=currency, card_brand=card_brand, since=window_start(uow.now())
    )
    return {account: Rate(*counted.get(account, (0, 0))) for account in accounts}


async def record_outcome(uow: UnitOfWork, account_id: str, *, currency: str, card_brand: str, succeeded: bool) -> None:
    """One authorization's outcome at the account, in the segment's current bucket: what
    success-rate routing reads (docs/routing.md, The window)."""
    await repository.record_outcome(
        uow.connection,
        uow.tenant,
        account_id=account_id,
        currency=currency,
        card_brand=card_brand,
        bucket_start=bucket_of(uow.now()),
        stripe=secrets.randbelow(OUTCOME_STRIPES),
        succeeded=succeeded,
    )


async def prune_outcomes(database: Database, *, limit: int = PRUNE_BATCH_MAX) -> int:
    """The worker's duty: delete the outcome buckets no window reads any more, of every merchant,
    at most `limit` rows per transaction. Returns how many went."""
    pruned_total = 0
    while True:
        async with database.transaction() as connection:
            pruned = await repository.prune_outcomes(connection, window_start(database.clock.now()), limit)
        pruned_total += pruned
        if pruned < limit:
            return pruned_total
