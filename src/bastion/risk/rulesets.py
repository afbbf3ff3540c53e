"""Rulesets: versions of a merchant's rules, each checked when made and immutable after. One is
live (it decides), one may run in shadow beside it, the others are drafts or retired; activating
a retired version is the rollback (docs/risk.md, Rulesets)."""

from collections.abc import Mapping, Sequence

from bastion import audit
from bastion.kernel.clock import unix_seconds, unix_seconds_or_none
from bastion.kernel.errors import InvalidRequest, ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors
from bastion.risk import repository
from bastion.risk.attributes import ListKind
from bastion.risk.domain import RulesetStatus
from bastion.risk.errors import RiskRuleInvalid, RiskRulesetUnexpectedState
from bastion.risk.resources import RuleResource, Ruleset, RulesetList
from bastion.risk.rules import RuleInvalid, check_rule, parse_rule
from bastion.risk.schemas import RuleDraft, RulesetActivate, RulesetCreate


def ruleset_resource(row: AnyRow) -> Ruleset:
    return Ruleset(
        id=row["id"],
        object="risk.ruleset",
        version=row["version"],
        status=row["status"],
        description=row["description"],
        rules=[RuleResource(id=rule["id"], rule=rule["rule"], action=rule["action"]) for rule in row["rules"]],
        created=unix_seconds(row["created_at"]),
        activated=unix_seconds_or_none(row["activated_at"]),
        retired=unix_seconds_or_none(row["retired_at"]),
        livemode=row["livemode"],
    )


async def list_kinds(uow: UnitOfWork) -> dict[str, ListKind]:
    """alias -> kind of the merchant's lists in this mode, as the rules checker reads them."""
    return {alias: ListKind(kind) for alias, kind in (await repository.list_kinds(uow.connection, uow.tenant)).items()}


def _checked(index: int, text: str, lists: Mapping[str, ListKind]) -> str:
    """The rule's action, once its text is parsed and checked; refused naming `rules[index][rule]`."""
    try:
        rule = parse_rule(text)
        check_rule(rule, lists)
    except RuleInvalid as refused:
        raise RiskRuleInvalid(f"Rule {index + 1}: {refused}", param=f"rules[{index}][rule]") from None
    return rule.action.value


def _stored_rules(drafts: Sequence[RuleDraft], lists: Mapping[str, ListKind]) -> list[dict[str, str]]:
    rules: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, draft in enumerate(drafts):
        rule_id = draft.id or f"rule_{index + 1}"
        if rule_id in seen:
            raise InvalidRequest(f"Rule {index + 1}: the id {rule_id!r} is another rule's already", param=f"rules[{index}][id]")
        seen.add(rule_id)
        rules.append({"id": rule_id, "rule": draft.rule, "action": _checked(index, draft.rule, lists)})
    return rules


async def create_ruleset(uow: UnitOfWork, request: RulesetCreate) -> Ruleset:
    """A new draft, numbered after the merchant's last version in this mode."""
    await repository.lock_configuration(uow.connection, uow.tenant)
    rules = _stored_rules(request.rules, await list_kinds(uow))
    row = await repository.insert_ruleset(
        uow.connection,
        uow.tenant,
        ruleset_id=new_id("rs"),
        description=request.description,
        rules=rules,
        created_at=uow.now(),
    )
    resource = ruleset_resource(row)
    audit.record(
        uow, action_type="risk.ruleset.create", resource_type="risk.ruleset", resource_id=row["id"], before=None, after=resource
    )
    return resource


async def _ruleset(uow: UnitOfWork, ruleset_id: str, *, for_update: bool = False) -> AnyRow:
    row = (
        await repository.get_ruleset(uow.connection, uow.tenant, ruleset_id, for_update=for_update)
        if is_id(ruleset_id, "rs")
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such ruleset: '{ruleset_id}'", param="id")
    return row


async def retrieve_ruleset(uow: UnitOfWork, ruleset_id: str) -> Ruleset:
    return ruleset_resource(await _ruleset(uow, ruleset_id))


async def list_rulesets(uow: UnitOfWork, request: PageRequest, status: RulesetStatus | None) -> RulesetList:
    await check_cursors(
        request,
        prefix="rs",
        noun="ruleset",
        exists=lambda cursor: repository.ruleset_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_rulesets(uow.connection, uow.tenant, request, status)
    return RulesetList(
        object="list", url="/v1/risk/rulesets", data=[ruleset_resource(row) for row in page.rows], has_more=page.has_more
    )


async def _set_status(uow: UnitOfWork, before: AnyRow, status: RulesetStatus, action: str) -> Ruleset:
    row = await repository.set_ruleset_status(uow.connection, uow.tenant, before["id"], status, uow.now())
    resource = ruleset_resource(row)
    audit.record(
        uow,
        action_type=action,
        resource_type="risk.ruleset",
        resource_id=row["id"],
        before=ruleset_resource(before),
        after=resource,
    )
    return resource


async def activate_ruleset(uow: UnitOfWork, ruleset_id: str, request: RulesetActivate) -> Ruleset:
    """Make the ruleset live (or shadow); the one that held that place is retired. Its rules are
    checked again: a list they name may have been deleted since they were written."""
    await repository.lock_configuration(uow.connection, uow.tenant)
    row = await _ruleset(uow, ruleset_id, for_update=True)
    target = RulesetStatus.SHADOW if request.shadow else RulesetStatus.LIVE
    if row["status"] == target:
        return ruleset_resource(row)
    lists = await list_kinds(uow)
    for index, rule in enumerate(row["rules"]):
        _checked(index, rule["rule"], lists)
    holder = await repository.ruleset_in_status(uow.connection, uow.tenant, target)
    if holder is not None:
        await _set_status(uow, holder, RulesetStatus.RETIRED, "risk.ruleset.retire")
    return await _set_status(uow, row, target, f"risk.ruleset.{target}")


async def retire_ruleset(uow: UnitOfWork, ruleset_id: str) -> Ruleset:
    """Stop a live or shadow ruleset: with no live one, no rule decides (every attempt is allowed)."""
    await repository.lock_configuration(uow.connection, uow.tenant)
    row = await _ruleset(uow, ruleset_id, for_update=True)
    if row["status"] == RulesetStatus.RETIRED:
        return ruleset_resource(row)
    if row["status"] == RulesetStatus.DRAFT:
        raise RiskRulesetUnexpectedState(
            f"The ruleset {ruleset_id} is a draft: only a live or shadow ruleset can be retired.", param="id"
        )
    return await _set_status(uow, row, RulesetStatus.RETIRED, "risk.ruleset.retire")


async def rulesets_naming(uow: UnitOfWork, alias: str) -> list[AnyRow]:
    """The live and shadow rulesets whose rules name the list `@alias`."""
    naming = []
    for status in (RulesetStatus.LIVE, RulesetStatus.SHADOW):
        row = await repository.ruleset_in_status(uow.connection, uow.tenant, status)
        if row is not None and any(alias in parse_rule(rule["rule"]).lists() for rule in row["rules"]):
            naming.append(row)
    return naming
