"""Backtests and the shadow report (docs/risk.md, Backtests): a candidate ruleset evaluated over
stored decisions with the attribute values recorded at the time (no look-ahead), each rule's
hits scored against the attempts later found to be fraud; and how the shadow ruleset's verdicts
compared with the live one's."""

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bastion.platform.db import Actor, AnyRow, Database, Tenant
from bastion.risk import repository
from bastion.risk.assessment import ParsedRuleset, verdict
from bastion.risk.attributes import ListKind
from bastion.risk.replay import typed_values
from bastion.risk.rules import Rule, RuleInvalid, check_rule, evaluate, parse_rule
from bastion.risk.rulesets import list_kinds

CANDIDATE_BYTES_MAX = 1_000_000
CANDIDATE_RULES_MAX = 200
DECISIONS_MAX = 1_000_000
_PAGE = 2_000
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


async def stored_decisions(database: Database, tenant: Tenant, since: datetime | None) -> list[AnyRow]:
    """A merchant's decisions in one mode from `since` (a UTC day), in the order made, at most
    DECISIONS_MAX; as the owner."""
    start = _BEGINNING if since is None else since.replace(tzinfo=UTC)
    rows: list[AnyRow] = []
    async with database.connection() as connection:
        while len(rows) < DECISIONS_MAX:
            after_id = rows[-1]["id"] if rows else ""
            page = await repository.decisions_since(connection, tenant, start, after_id=after_id, limit=_PAGE)
            rows += page
            if len(page) < _PAGE:
                break
    return rows


async def merchant_lists(database: Database, tenant: Tenant) -> dict[str, ListKind]:
    """alias -> kind of the merchant's lists, for checking a candidate's rules."""
    async with database.unit_of_work(tenant, Actor(id="backtest")) as uow:
        return await list_kinds(uow)


class CandidateInvalid(ValueError):
    """A candidate ruleset file refused, naming the rule."""


def parse_candidate(text: str, lists: Mapping[str, ListKind]) -> ParsedRuleset:
    """`{"rules": [{"id": ..., "rule": ...}]}`, as `POST /v1/risk/rulesets` takes them."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise CandidateInvalid(f"not JSON: {error}") from None
    rules = document.get("rules") if isinstance(document, dict) else None
    if not isinstance(rules, list) or not 0 < len(rules) <= CANDIDATE_RULES_MAX:
        raise CandidateInvalid(f'expected {{"rules": [...]}} with 1 to {CANDIDATE_RULES_MAX} rules')
    parsed: list[tuple[str, Rule]] = []
    for index, entry in enumerate(rules):
        if not isinstance(entry, dict) or not isinstance(entry.get("rule"), str):
            raise CandidateInvalid(f'rule {index + 1}: expected {{"id": ..., "rule": ...}}')
        rule_id = str(entry.get("id") or f"rule_{index + 1}")
        try:
            rule = parse_rule(entry["rule"])
            check_rule(rule, lists)
        except RuleInvalid as refused:
            raise CandidateInvalid(f"rule {index + 1} ({rule_id}): {refused}") from None
        parsed.append((rule_id, rule))
    return ParsedRuleset("candidate", tuple(parsed))


@dataclass(slots=True)
class RuleScore:
    id: str
    rule: str
    action: str
    hits: int = 0
    fraud_hits: int = 0


@dataclass(slots=True)
class Backtest:
    decisions: int = 0
    fraud: int = 0
    not_assessed: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    rules: list[RuleScore] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        """Per rule: hits, precision (fraud among its hits) and recall (its share of all fraud)."""
        return {
            "decisions": self.decisions,
            "not_assessed": self.not_assessed,
            "fraud": self.fraud,
            "actions": dict(sorted(self.actions.items())),
            "rules": [
                {
                    "id": score.id,
                    "rule": score.rule,
                    "action": score.action,
                    "hits": score.hits,
                    "fraud_hits": score.fraud_hits,
                    "precision": None if score.hits == 0 else round(score.fraud_hits / score.hits, 4),
                    "recall": None if self.fraud == 0 else round(score.fraud_hits / self.fraud, 4),
                }
                for score in self.rules
            ],
        }


def backtest(candidate: ParsedRuleset, decisions: Iterable[Mapping[str, Any]], fraud: set[str]) -> Backtest:
    """Each rule's hits over the stored decisions (whatever its order: how often its condition is
    true), and what the candidate as a whole would have done. A decision made past its budget
    holds no values and is counted apart. A list a rule names is read as the decision found it;
    a lookup the rules of the time did not make counts as not in the list."""
    result = Backtest(rules=[RuleScore(rule_id, rule.text, rule.action.value) for rule_id, rule in candidate.rules])
    for decision in decisions:
        result.decisions += 1
        is_fraud = decision["attempt_id"] in fraud
        result.fraud += is_fraud
        if decision["risk_level"] == "not_assessed":
            result.not_assessed += 1
            continue
        attributes = decision["attributes"]
        values = typed_values(attributes["values"])
        hits = {(alias, value) for alias, value in attributes["list_hits"]}

        def in_list(alias: str, value: object, hits: set[tuple[str, str]] = hits) -> bool:
            return (alias, str(value)) in hits

        for score, (_, rule) in zip(result.rules, candidate.rules, strict=True):
            if evaluate(rule.condition, values, in_list) is True:
                score.hits += 1
                score.fraud_hits += is_fraud
        action, _ = verdict(candidate, values, hits, always_blocked=bool(attributes.get("always_blocked", False)))
        result.actions[action.value] += 1
    return result


def shadow_report(decisions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How the shadow ruleset's verdicts compared with the live one's, over the decisions it
    saw: each (live action, shadow action) pair counted."""
    pairs: Counter[tuple[str, str]] = Counter()
    for decision in decisions:
        shadow = decision["shadow"]
        if shadow is not None:
            pairs[(decision["action"], shadow["action"])] += 1
    compared = sum(pairs.values())
    agreed = sum(count for (live, shadow), count in pairs.items() if live == shadow)
    return {
        "compared": compared,
        "agreed": agreed,
        "agreement": None if compared == 0 else round(agreed / compared, 4),
        "pairs": [{"live": live, "shadow": shadow, "count": count} for (live, shadow), count in sorted(pairs.items())],
    }
