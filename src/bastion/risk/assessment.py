"""Assessing an attempt before any connector is called (docs/risk.md, Decisions): its attribute
values, its velocity counted, the live ruleset evaluated (and the shadow one beside it), the
decision stored with everything it was made from and announced by `risk.decision`, all in one
transaction and within the merchant's time budget. Past the budget, the merchant's failure
policy decides: `fail_open` allows the attempt `not_assessed`, `fail_closed` sends it to review.

An attempt is assessed once: asked again (a command resumed), the stored decision answers."""

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from bastion import events
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import InvariantViolated
from bastion.kernel.ids import new_id
from bastion.kernel.money import Money
from bastion.platform.db import Actor, AnyRow, Database, Tenant, UnitOfWork
from bastion.platform.logging import get_logger
from bastion.risk import repository
from bastion.risk.attributes import CATALOGUE
from bastion.risk.domain import list_item
from bastion.risk.events import RISK_DECISION
from bastion.risk.geo import Locator
from bastion.risk.iin import iin_number
from bastion.risk.models import NO_MODELS, NO_VERDICT, ModelShelf, Serving, Verdict, entities_of, judge, remember_attempt
from bastion.risk.resources import RiskDecision
from bastion.risk.rules import Action, AttributeRef, AttributeValue, ListRef, Membership, Rule, first_match, parse_rule, walk
from bastion.risk.signals import Attempt, always_blocked, attempt_values, is_risk_test_card, location_values, usd
from bastion.risk.travel import DEFAULT_TRAVEL_LIMITS, TRAVEL_SUBJECTS, TravelLimits, travel
from bastion.risk.velocity import Counted, PostgresVelocity, Velocity, VelocityUnavailable, subject_key

BUDGET_MS_DEFAULT = 50
FAIL_OPEN: Final = "fail_open"
FAIL_CLOSED: Final = "fail_closed"
# With no live ruleset, Radar's default rule.
DEFAULT_RULES = (("default_block_highest_risk", "block if :risk_level: = 'highest'"),)
_RULESETS_CACHED_MAX = 1_024
TEST_CARD_RULE = "test_card_always_blocked"
_log = get_logger(__name__)
_VELOCITY_KINDS = {"card": "card_fingerprint", "customer": "customer", "email": "customer_email", "ip": "ip_address"}


class _DecidedMeanwhile(Exception):
    """The attempt was decided by another holder of its command while this one assessed it."""


@dataclass(frozen=True, slots=True)
class Decision:
    id: str
    action: Action
    risk_score: int
    risk_level: str
    # The rule that decided: {"id", "rule", "action"}; None when none matched.
    rule: dict[str, str] | None

    def charge_outcome(self) -> dict[str, Any]:
        """What a charge's outcome tells of the decision, as Stripe's does: `risk_level`,
        `risk_score` and the `rule` that decided."""
        rule = self.rule
        predicate = None if rule is None else {"id": rule["id"], "action": rule["action"], "predicate": rule["rule"]}
        return {"risk_level": self.risk_level, "risk_score": self.risk_score, "rule": predicate}

    def to_state(self) -> dict[str, Any]:
        """For a command's state or outcome (JSON)."""
        return {
            "id": self.id,
            "action": self.action.value,
            "risk_score": self.risk_score,
            "risk_level": self.risk_level,
            "rule": self.rule,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Decision":
        return cls(state["id"], Action(state["action"]), state["risk_score"], state["risk_level"], state["rule"])

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "Decision":
        rule = next((reason for reason in row["reasons"] if reason.get("decided")), None)
        return cls(
            id=row["id"],
            action=Action(row["action"]),
            risk_score=row["risk_score"],
            risk_level=row["risk_level"],
            rule=None if rule is None else {key: rule[key] for key in ("id", "rule", "action")},
        )


@dataclass(frozen=True, slots=True)
class ParsedRuleset:
    id: str | None  # None: the default rules
    rules: tuple[tuple[str, Rule], ...]
    # (list alias, attribute) for each list the rules look an attribute up in: found once, when
    # parsed, not walked for on every attempt.
    list_lookups: frozenset[tuple[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        lookups = frozenset(
            (node.collection.name, node.operand.name)
            for _, rule in self.rules
            for node in walk(rule.condition)
            if isinstance(node, Membership) and isinstance(node.collection, ListRef) and isinstance(node.operand, AttributeRef)
        )
        object.__setattr__(self, "list_lookups", lookups)


@lru_cache(maxsize=_RULESETS_CACHED_MAX)
def _parsed(ruleset_id: str | None, texts: tuple[tuple[str, str], ...]) -> ParsedRuleset:
    """A ruleset's rules parsed once per process: a ruleset never changes once made."""
    return ParsedRuleset(ruleset_id, tuple((rule_id, parse_rule(text)) for rule_id, text in texts))


def parsed_ruleset(row: Mapping[str, Any] | None) -> ParsedRuleset:
    if row is None:
        return _parsed(None, DEFAULT_RULES)
    return _parsed(row["id"], tuple((rule["id"], rule["rule"]) for rule in row["rules"]))


class Assessor:
    """Assesses attempts on `database`, within each merchant's time budget or `budget_ms` for
    those that set none."""

    def __init__(
        self,
        database: Database,
        *,
        budget_ms: int = BUDGET_MS_DEFAULT,
        locator: Locator | None = None,
        travel_limits: TravelLimits = DEFAULT_TRAVEL_LIMITS,
        velocity: Velocity | None = None,
        shelf: ModelShelf | None = None,
    ) -> None:
        """`locator`: where IP addresses are (None: nowhere, every location attribute missing);
        `velocity`: where the counters are (None: PostgreSQL); `shelf`: the fraud models (None: rules alone)."""
        self.database = database
        self.velocity = PostgresVelocity() if velocity is None else velocity
        self.budget_ms = budget_ms
        self.locator = locator
        self.travel_limits = travel_limits
        self.shelf = shelf

    async def assess(self, tenant: Tenant, actor: Actor, attempt: Attempt) -> Decision:
        started = time.monotonic()
        policy = FAIL_OPEN
        # Before the budget: a new model is read and checked once, in a thread.
        serving = NO_MODELS if self.shelf is None else await self.shelf.serving()
        try:
            async with asyncio.timeout(None) as budget:
                async with self.database.unit_of_work(tenant, actor) as uow:
                    context = await repository.assessment_context(
                        uow.connection, tenant, attempt.attempt_id, attempt.currency, iin_number(attempt.card_bin)
                    )
                    if context["decision"] is not None:
                        return Decision.from_row(context["decision"])
                    settings = context["settings"] or {}
                    policy = settings.get("failure_policy", FAIL_OPEN)
                    budget_s = settings.get("budget_ms", self.budget_ms) / 1000
                    budget.reschedule(asyncio.get_running_loop().time() + budget_s - (time.monotonic() - started))
                    return await self._decide(uow, attempt, context, (started, serving))
        except TimeoutError:
            return await self._not_assessed(tenant, actor, attempt, policy=policy, started=started, why="the time budget passed")
        except VelocityUnavailable as unavailable:
            _log.warning("risk_velocity_unavailable", attempt=attempt.attempt_id, error=str(unavailable))
            why = "the velocity store did not answer"
            return await self._not_assessed(tenant, actor, attempt, policy=policy, started=started, why=why)
        except _DecidedMeanwhile:
            return await self._stored(tenant, actor, attempt.attempt_id)

    async def _stored(self, tenant: Tenant, actor: Actor, attempt_id: str) -> Decision:
        async with self.database.unit_of_work(tenant, actor) as uow:
            decision = await decision_of(uow, attempt_id)
        if decision is None:
            raise InvariantViolated("a decision that conflicted is stored")
        return decision

    async def _decide(
        self, uow: UnitOfWork, attempt: Attempt, context: Mapping[str, Any], run: tuple[float, Serving]
    ) -> Decision:
        """`run`: when the assessment started, and the models it uses."""
        started, serving = run
        now = uow.now()
        rate = context["usd_per_unit"]
        values = attempt_values(attempt, now, usd(attempt.amount, attempt.currency, None if rate is None else Decimal(rate)))
        location = None if attempt.ip_address is None or self.locator is None else self.locator.locate(attempt.ip_address)
        values |= location_values(location, values["device_timezone"], now)
        values["card_country"] = context["card_country"]
        subjects = {kind: str(values[name]) for kind, name in _VELOCITY_KINDS.items() if values[name] is not None}
        if values["device_id"] is not None:
            subjects["device"] = str(values["device_id"])
        counted = Counted(attempt.attempt_id, subjects, attempt.card_fingerprint, _number(values["amount_in_usd"]), now)
        values |= await self.velocity.count_attempt(uow, counted)
        travelled = [subject_key(kind, subjects[kind]) for kind in TRAVEL_SUBJECTS if kind in subjects]
        values |= await travel(uow, travelled, location, now, self.travel_limits)
        judged = await self._judge(uow, attempt, values, serving)
        rulesets = {row["status"]: row for row in context["rulesets"] or []}
        live, shadow = parsed_ruleset(rulesets.get("live")), rulesets.get("shadow")
        shadow_rules = None if shadow is None else parsed_ruleset(shadow)
        hits = await _list_hits(uow, [live, *([shadow_rules] if shadow_rules else [])], values)
        blocked_card = always_blocked(attempt)
        action, rule_id = verdict(live, values, hits, always_blocked=blocked_card)
        shadow_verdict = None if shadow_rules is None else verdict(shadow_rules, values, hits, always_blocked=blocked_card)
        shadow_record = (
            None
            if shadow_verdict is None or shadow_rules is None
            else {"ruleset_id": shadow_rules.id, "action": shadow_verdict[0], "rule_id": shadow_verdict[1]}
        )
        row = await repository.insert_decision(
            uow.connection,
            uow.tenant,
            _decision_values(
                attempt,
                action=action,
                score=(0 if values["risk_score"] is None else int(str(values["risk_score"])), str(values["risk_level"])),
                rule_id=rule_id,
                reasons=_reasons(live, rule_id, values),
                rulesets=(live.id, shadow_record),
                attributes={
                    "values": _stored(values),
                    "list_hits": sorted([alias, value] for alias, value in hits),
                    "always_blocked": blocked_card,
                },
                started=started,
                now=now,
                judged=judged,
            ),
        )
        if row is None:
            # Another holder of this attempt's command (a retry or the janitor, past the hold
            # timeout) decided first: this assessment and its counting roll back, and that decision stands.
            raise _DecidedMeanwhile
        events.emit(uow, RISK_DECISION, decision_resource(row))
        return Decision.from_row(row)

    async def _judge(self, uow: UnitOfWork, attempt: Attempt, values: dict[str, AttributeValue], serving: Serving) -> Verdict:
        """The models' verdict, which sets `risk_score` and `risk_level` (but on the sandbox's risk
        test cards); the attempt joins the history the models learn from."""
        entities = entities_of(
            uow.tenant, customer_id=attempt.customer_id, card_fingerprint=attempt.card_fingerprint, terminal=attempt.terminal
        )
        usd_amount = values["amount_in_usd"]
        amount = (
            float(usd_amount) if isinstance(usd_amount, Decimal) else float(Money(attempt.amount, attempt.currency).to_decimal())
        )
        judged = await judge(uow, serving, entities, amount=amount, values=values)
        if judged.level is not None and not is_risk_test_card(attempt):
            values["risk_score"], values["risk_level"] = judged.score, judged.level
        if self.shelf is not None and judged.record is not None:
            if judged.version is not None:
                self.shelf.scores.labels(str(judged.version), "champion").inc()
            if "challenger" in judged.record:
                self.shelf.scores.labels(str(judged.record["challenger"]["version"]), "challenger").inc()
        await remember_attempt(uow, attempt.attempt_id, entities, amount=amount, values=values)
        return judged

    async def _not_assessed(
        self, tenant: Tenant, actor: Actor, attempt: Attempt, *, policy: str, started: float, why: str
    ) -> Decision:
        """The failure policy's decision, stored unless the assessment's own committed as the
        budget ran out (then that one stands); `why` the assessment failed."""
        action = Action.REVIEW if policy == FAIL_CLOSED else Action.ALLOW
        async with self.database.unit_of_work(tenant, actor) as uow:
            row = await repository.insert_decision(
                uow.connection,
                uow.tenant,
                _decision_values(
                    attempt,
                    action=action,
                    score=(0, "not_assessed"),
                    rule_id=None,
                    reasons=[{"id": policy, "rule": f"{why}: {policy}", "action": action.value, "values": {}}],
                    rulesets=(None, None),
                    attributes={"values": {}, "list_hits": []},
                    started=started,
                    now=uow.now(),
                ),
            )
            if row is not None:
                events.emit(uow, RISK_DECISION, decision_resource(row))
        if row is None:
            return await self._stored(tenant, actor, attempt.attempt_id)
        return Decision.from_row(row)


def _decision_values(
    attempt: Attempt,
    *,
    action: Action,
    score: tuple[int, str],
    rule_id: str | None,
    reasons: list[dict[str, Any]],
    rulesets: tuple[str | None, dict[str, Any] | None],
    attributes: dict[str, Any],
    started: float,
    now: datetime,
    judged: Verdict = NO_VERDICT,
) -> dict[str, Any]:
    """A decision's row: `score` is the risk score and level, `rulesets` the live ruleset's id
    and what the shadow one decided."""
    risk_score, risk_level = score
    ruleset_id, shadow = rulesets
    return {
        "id": new_id("rd"),
        "attempt_id": attempt.attempt_id,
        "payment_intent_id": attempt.payment_intent_id,
        "action": action,
        "risk_score": risk_score,
        "risk_level": risk_level,
        "rule_id": rule_id,
        "reasons": reasons,
        "ruleset_id": ruleset_id,
        "shadow": shadow,
        "model_version": None if judged.version is None else str(judged.version),
        "model": judged.record,
        "attributes": attributes,
        "duration_ms": round((time.monotonic() - started) * 1000),
        "created_at": now,
    }


def verdict(
    ruleset: ParsedRuleset, values: Mapping[str, AttributeValue], hits: set[tuple[str, str]], *, always_blocked: bool
) -> tuple[Action, str | None]:
    """The action and the id of the rule that took it: the sandbox's always-blocked test card,
    else the ruleset's first rule whose condition is true (Radar's order), else allow."""
    if always_blocked:
        return Action.BLOCK, TEST_CARD_RULE
    decided = first_match([rule for _, rule in ruleset.rules], values, lambda alias, value: (alias, str(value)) in hits)
    if decided is None:
        return Action.ALLOW, None
    rule_id, rule = ruleset.rules[decided]
    return rule.action, rule_id


def _reasons(ruleset: ParsedRuleset, rule_id: str | None, values: Mapping[str, AttributeValue]) -> list[dict[str, Any]]:
    """The deciding rule, with the values of the attributes it names."""
    for candidate_id, rule in ruleset.rules:
        if candidate_id == rule_id:
            matched = {name: _json(values.get(name)) for name in sorted(rule.attributes())}
            return [{"id": rule_id, "rule": rule.text, "action": rule.action.value, "values": matched, "decided": True}]
    if rule_id == TEST_CARD_RULE:
        return [
            {"id": rule_id, "rule": "the sandbox's always-blocked test card", "action": "block", "values": {}, "decided": True}
        ]
    return []


async def _list_hits(
    uow: UnitOfWork, rulesets: Sequence[ParsedRuleset], values: Mapping[str, AttributeValue]
) -> set[tuple[str, str]]:
    """(alias, value as the attribute holds it) for each list the rules look an attribute up in
    that holds its value: one query for all of them."""
    lookups = frozenset[tuple[str, str]]().union(*(ruleset.list_lookups for ruleset in rulesets))
    asked: list[tuple[str, str, str]] = []
    for alias, attribute in sorted(lookups):
        value, kind = values.get(attribute), CATALOGUE[attribute].list_kind
        if value is None or kind is None:
            continue
        try:
            asked.append((alias, list_item(kind, str(value)), str(value)))
        except ValueError:
            continue  # a value no list of its kind could hold: not in the list
    if not asked:
        return set()
    held = await repository.list_matches(uow.connection, uow.tenant, [(alias, normalized) for alias, normalized, _ in asked])
    return {(alias, raw) for alias, normalized, raw in asked if (alias, normalized) in held}


def _number(value: AttributeValue) -> Decimal | None:
    return value if isinstance(value, Decimal) else None


def _json(value: AttributeValue) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _stored(values: Mapping[str, AttributeValue]) -> dict[str, Any]:
    return {name: _json(value) for name, value in sorted(values.items())}


async def decision_of(uow: UnitOfWork, attempt_id: str) -> Decision | None:
    """The decision on an attempt, if it was assessed."""
    row = await repository.decision_for_attempt(uow.connection, uow.tenant, attempt_id)
    return None if row is None else Decision.from_row(row)


def decision_resource(row: AnyRow | Mapping[str, Any]) -> RiskDecision:
    return RiskDecision(
        id=row["id"],
        object="risk.decision",
        attempt=row["attempt_id"],
        payment_intent=row["payment_intent_id"],
        action=row["action"],
        risk_score=row["risk_score"],
        risk_level=row["risk_level"],
        rule=row["rule_id"],
        reasons=row["reasons"],
        ruleset=row["ruleset_id"],
        shadow=row["shadow"],
        model_version=row["model_version"],
        model=row["model"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )
