"""The rules language (docs/risk.md, The language): `block if :card_country: != :ip_country:
and :amount_in_usd: > 500`. A rule is parsed by an LALR grammar into a tree of frozen nodes,
checked against the attribute catalogue and the merchant's lists, and evaluated over the values
of one attempt with three-valued logic: a comparison over a missing value is unknown, and a rule
matches only when its condition is true. Nothing is ever evaluated as Python."""

import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TypeAlias

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from bastion.risk.attributes import CATALOGUE, Attribute, ListKind, ValueType

RULE_LENGTH_MAX = 2_000
LITERAL_LIST_MAX = 100
NESTING_MAX = 32


class Action(StrEnum):
    """In the order a ruleset evaluates them (Radar's): the first action with a matching rule wins."""

    REQUEST_3DS = "request_3ds"
    ALLOW = "allow"
    BLOCK = "block"
    REVIEW = "review"


ACTION_ORDER = tuple(Action)

_GRAMMAR = r"""
start: ACTION _IF condition

?condition: disjunction
?disjunction: conjunction (_OR conjunction)*
?conjunction: negation (_AND negation)*
?negation: _NOT negation -> negated
         | atom
?atom: operand COMPARATOR operand -> comparison
     | operand _NOT _IN collection -> not_member
     | operand _IN collection -> member
     | MISSING "(" ATTRIBUTE ")" -> missing
     | ATTRIBUTE -> truthy
     | "(" condition ")"
?operand: ATTRIBUTE | literal
literal: NUMBER | STRING | BOOLEAN
collection: LIST
          | "(" literal ("," literal)* ")" -> literals

ACTION: /(allow|block|review|request_3ds)(?![a-z0-9_])/i
_IF: /if(?![a-z0-9_])/i
_OR: /or(?![a-z0-9_])/i
_AND: /and(?![a-z0-9_])/i
_NOT: /not(?![a-z0-9_])/i
_IN: /in(?![a-z0-9_])/i
MISSING: /is_(not_)?missing(?![a-z0-9_])/i
BOOLEAN: /(true|false)(?![a-z0-9_])/i
ATTRIBUTE: /:[a-z][a-z0-9_]*:/
LIST: /@[a-z][a-z0-9_]*/
NUMBER: /-?[0-9]+(\.[0-9]+)?(?![a-z0-9_.])/i
STRING: /'(\\.|[^'\\])*'/ | /"(\\.|[^"\\])*"/
COMPARATOR: "!=" | "<=" | ">=" | "=" | "<" | ">"

%ignore /[ \t\r\n]+/
"""
# Two ways in: a whole rule (risk's), or a condition alone (routing's, docs/routing.md).
_PARSER = Lark(_GRAMMAR, parser="lalr", propagate_positions=True, start=["start", "condition"])
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


class RuleInvalid(ValueError):
    """A rule's text refused, at a position in it (1-based line and column)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.reason = message
        self.line = line
        self.column = column


# The tree. Every node knows where it starts in the text, for the checker's messages.


@dataclass(frozen=True, slots=True)
class Position:
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class AttributeRef:
    name: str
    at: Position


Value: TypeAlias = Decimal | str | bool


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value
    at: Position


@dataclass(frozen=True, slots=True)
class ListRef:
    name: str
    at: Position


@dataclass(frozen=True, slots=True)
class Comparison:
    left: AttributeRef | Literal
    operator: str
    right: AttributeRef | Literal
    at: Position


@dataclass(frozen=True, slots=True)
class Membership:
    operand: AttributeRef | Literal
    collection: ListRef | tuple[Literal, ...]
    negated: bool
    at: Position


@dataclass(frozen=True, slots=True)
class Missing:
    attribute: AttributeRef
    negated: bool  # is_not_missing
    at: Position


@dataclass(frozen=True, slots=True)
class Truthy:
    attribute: AttributeRef
    at: Position


@dataclass(frozen=True, slots=True)
class Not:
    operand: "Condition"
    at: Position


@dataclass(frozen=True, slots=True)
class AllOf:
    operands: tuple["Condition", ...]
    at: Position


@dataclass(frozen=True, slots=True)
class AnyOf:
    operands: tuple["Condition", ...]
    at: Position


Condition: TypeAlias = Comparison | Membership | Missing | Truthy | Not | AllOf | AnyOf


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    condition: Condition
    text: str

    def attributes(self) -> set[str]:
        """The attributes the rule names: what an attempt must be told for it."""
        return {node.name for node in walk(self.condition) if isinstance(node, AttributeRef)}

    def lists(self) -> set[str]:
        return {node.name for node in walk(self.condition) if isinstance(node, ListRef)}


def walk(node: Condition | AttributeRef | Literal | ListRef) -> list[Condition | AttributeRef | Literal | ListRef]:
    match node:
        case Comparison(left=left, right=right):
            children: list[Condition | AttributeRef | Literal | ListRef] = [left, right]
        case Membership(operand=operand, collection=collection):
            children = [operand, *(collection if isinstance(collection, tuple) else (collection,))]
        case Missing(attribute=attribute) | Truthy(attribute=attribute):
            children = [attribute]
        case Not(operand=operand):
            children = [operand]
        case AllOf(operands=operands) | AnyOf(operands=operands):
            children = list(operands)
        case _:
            children = []
    return [node, *(found for child in children for found in walk(child))]


# Parsing.


def parse_rule(text: str) -> Rule:
    """The rule in `text`, or `RuleInvalid` naming where the text stops making sense."""
    tree = _parse(text, "start", "A rule starts with its action: allow, block, review or request_3ds, then if")
    action_token, condition = tree.children
    if not isinstance(action_token, Token):
        raise RuleInvalid("A rule starts with its action", 1, 1)
    return Rule(Action(action_token.lower()), _condition(condition, depth=0), text)


def parse_condition(text: str) -> Condition:
    """A condition alone (`:currency: = 'EUR' and :amount: > 5000`), or `RuleInvalid` naming
    where the text stops making sense."""
    return _condition(_parse(text, "condition", "A condition starts with an attribute, a value, not or ("), depth=0)


def _parse(text: str, start: str, how_it_starts: str) -> Tree[Token]:
    if len(text) > RULE_LENGTH_MAX:
        raise RuleInvalid(f"A rule is at most {RULE_LENGTH_MAX} characters", 1, RULE_LENGTH_MAX + 1)
    try:
        return _PARSER.parse(text, start=start)
    except UnexpectedInput as error:
        raise _syntax_error(error, text, how_it_starts) from None
    except LarkError as error:  # anything else the parser may raise on odd input: still the rule's fault
        raise RuleInvalid(f"The rule cannot be read: {error}", 1, 1) from None


def _syntax_error(error: UnexpectedInput, text: str, how_it_starts: str) -> RuleInvalid:
    line, column = max(error.line, 1), max(error.column, 1)
    if not text.strip() or (line, column) == (1, 1) or text[: error.pos_in_stream or 0].strip() == "":
        return RuleInvalid(how_it_starts, line, column)
    if isinstance(error, UnexpectedEOF):
        lines = text.splitlines() or [""]
        return RuleInvalid("The rule ends too early: a condition is incomplete", len(lines), len(lines[-1]) + 1)
    if isinstance(error, UnexpectedCharacters):
        shown = "" if error.pos_in_stream is None else f" {text[error.pos_in_stream]!r}"
        return RuleInvalid(f"Unexpected character{shown}", line, column)
    if isinstance(error, UnexpectedToken):
        if error.token.type == "$END":
            lines = text.splitlines() or [""]
            return RuleInvalid("The rule ends too early: a condition is incomplete", len(lines), len(lines[-1]) + 1)
        return RuleInvalid(f"Unexpected {error.token.value!r}", line, column)
    return RuleInvalid("The rule cannot be read", line, column)


def _at(item: Tree[Token] | Token) -> Position:
    if isinstance(item, Token):
        return Position(item.line or 1, item.column or 1)
    return Position(item.meta.line, item.meta.column)


def _condition(item: Tree[Token] | Token, *, depth: int) -> Condition:
    at = _at(item)
    if depth > NESTING_MAX:
        raise RuleInvalid(f"A rule nests at most {NESTING_MAX} levels deep", at.line, at.column)
    if isinstance(item, Token):
        raise RuleInvalid(f"Unexpected {item.value!r}: a condition is expected", at.line, at.column)
    children = item.children
    condition: Condition
    match item.data:
        case "disjunction":
            condition = AnyOf(tuple(_condition(child, depth=depth + 1) for child in children), at)
        case "conjunction":
            condition = AllOf(tuple(_condition(child, depth=depth + 1) for child in children), at)
        case "negated":
            condition = Not(_condition(children[0], depth=depth + 1), at)
        case "comparison":
            left, operator, right = children
            condition = Comparison(_operand(left), str(operator), _operand(right), at)
        case "member" | "not_member":
            operand, collection = children
            condition = Membership(_operand(operand), _collection(collection), item.data == "not_member", at)
        case "missing":
            keyword, attribute = children
            condition = Missing(_attribute(attribute), "not" in str(keyword).lower(), at)
        case "truthy":
            condition = Truthy(_attribute(children[0]), at)
        case _:
            raise RuleInvalid(f"Unexpected {item.data}", at.line, at.column)
    return condition


def _attribute(item: Tree[Token] | Token) -> AttributeRef:
    at = _at(item)
    if not isinstance(item, Token) or item.type != "ATTRIBUTE":
        raise RuleInvalid("An attribute is expected here, such as :amount:", at.line, at.column)
    return AttributeRef(item.value.strip(":"), at)


def _operand(item: Tree[Token] | Token) -> AttributeRef | Literal:
    if isinstance(item, Token):
        return _attribute(item)
    return _literal(item)


def _literal(item: Tree[Token] | Token) -> Literal:
    at = _at(item)
    token = item.children[0] if isinstance(item, Tree) else item
    if not isinstance(token, Token):
        raise RuleInvalid("A value is expected here", at.line, at.column)
    text = token.value
    if token.type == "NUMBER":
        try:
            return Literal(Decimal(text), at)
        except InvalidOperation:
            raise RuleInvalid(f"{text!r} is not a number", at.line, at.column) from None
    if token.type == "BOOLEAN":
        return Literal(text.lower() == "true", at)
    return Literal(_ESCAPE.sub(r"\1", text[1:-1]), at)


def _collection(item: Tree[Token] | Token) -> ListRef | tuple[Literal, ...]:
    at = _at(item)
    if isinstance(item, Token) or item.data == "collection":
        token = item if isinstance(item, Token) else item.children[0]
        if not isinstance(token, Token):
            raise RuleInvalid("A list is expected here, such as @vip_emails", at.line, at.column)
        return ListRef(token.value[1:], _at(token))
    if len(item.children) > LITERAL_LIST_MAX:
        raise RuleInvalid(f"A list in a rule holds at most {LITERAL_LIST_MAX} values: use a list (@name)", at.line, at.column)
    return tuple(_literal(child) for child in item.children)


# Checking against the catalogue and the merchant's lists.

_ORDERING = frozenset({"<", "<=", ">", ">="})


def check_rule(rule: Rule, lists: Mapping[str, ListKind]) -> None:
    """Refuse what could never be evaluated as meant, against risk's catalogue."""
    check_condition(rule.condition, lists, CATALOGUE, listed_at="GET /v1/risk/attributes")


def check_condition(
    condition: Condition, lists: Mapping[str, ListKind], catalogue: Mapping[str, Attribute], *, listed_at: str
) -> None:
    """Refuse what could never be evaluated as meant: an attribute not in `catalogue` (whose
    names `listed_at` lists) or an unknown list, a comparison of two types, an order on what is
    not a number, a list of another kind."""
    for node in walk(condition):
        match node:
            case AttributeRef(name=name, at=at) if name not in catalogue:
                raise RuleInvalid(f"Unknown attribute :{name}: ({listed_at} lists them)", at.line, at.column)
            case ListRef(name=name, at=at) if name not in lists:
                raise RuleInvalid(f"Unknown list @{name}", at.line, at.column)
    for node in walk(condition):
        match node:
            case Comparison():
                _check_comparison(node, catalogue)
            case Membership():
                _check_membership(node, lists, catalogue)
            case Truthy(attribute=attribute, at=at) if catalogue[attribute.name].type != ValueType.BOOLEAN:
                raise RuleInvalid(
                    f":{attribute.name}: is a {catalogue[attribute.name].type}, not a boolean: compare it to a value",
                    at.line,
                    at.column,
                )


def _type_of(operand: AttributeRef | Literal, catalogue: Mapping[str, Attribute]) -> ValueType:
    if isinstance(operand, AttributeRef):
        return catalogue[operand.name].type
    if isinstance(operand.value, bool):
        return ValueType.BOOLEAN
    return ValueType.NUMBER if isinstance(operand.value, Decimal) else ValueType.STRING


def _comparable(left: ValueType, right: ValueType) -> bool:
    # An IP address is written in a rule as a string: '203.0.113.7'.
    textual = {ValueType.STRING, ValueType.IP}
    return left == right or (left in textual and right in textual)


def _check_comparison(node: Comparison, catalogue: Mapping[str, Attribute]) -> None:
    left, right = _type_of(node.left, catalogue), _type_of(node.right, catalogue)
    if not _comparable(left, right):
        raise RuleInvalid(f"Cannot compare a {left} with a {right}", node.at.line, node.at.column)
    if node.operator in _ORDERING and left != ValueType.NUMBER:
        raise RuleInvalid(f"{node.operator} compares numbers, not a {left}", node.at.line, node.at.column)
    if isinstance(node.left, Literal) and isinstance(node.right, Literal):
        raise RuleInvalid("A comparison names at least one attribute", node.at.line, node.at.column)


def _check_membership(node: Membership, lists: Mapping[str, ListKind], catalogue: Mapping[str, Attribute]) -> None:
    at = node.at
    if not isinstance(node.operand, AttributeRef):
        raise RuleInvalid("in looks up an attribute, such as :customer_email: in @vip_emails", at.line, at.column)
    attribute = catalogue[node.operand.name]
    if isinstance(node.collection, ListRef):
        kind = lists[node.collection.name]
        if attribute.list_kind != kind:
            found = "no list" if attribute.list_kind is None else f"a list of {attribute.list_kind}"
            raise RuleInvalid(
                f"@{node.collection.name} is a list of {kind}; :{attribute.name}: is looked up in {found}", at.line, at.column
            )
        return
    for literal in node.collection:
        if not _comparable(attribute.type, _type_of(literal, catalogue)):
            raise RuleInvalid(
                f":{attribute.name}: is a {attribute.type}: the list's values must be too", literal.at.line, literal.at.column
            )


# Evaluation, with three-valued logic: True, False, or None for unknown (docs/risk.md has the tables).

AttributeValue: TypeAlias = Decimal | int | str | bool | None
# Whether the named list holds the value (a list of IP ranges holds the addresses in them).
ListLookup: TypeAlias = Callable[[str, AttributeValue], bool]


def evaluate(condition: Condition, values: Mapping[str, AttributeValue], in_list: ListLookup) -> bool | None:
    result: bool | None
    match condition:
        case Comparison(left=left, operator=operator, right=right):
            result = _compare(_value(left, values), operator, _value(right, values))
        case Membership(operand=operand, collection=collection, negated=negated):
            found = _member(_value(operand, values), collection, in_list)
            result = None if found is None else found != negated
        case Missing(attribute=attribute, negated=negated):
            result = (values.get(attribute.name) is None) != negated
        case Truthy(attribute=attribute):
            value = values.get(attribute.name)
            result = None if value is None else bool(value)
        case Not(operand=operand):
            inner = evaluate(operand, values, in_list)
            result = None if inner is None else not inner
        case AllOf(operands=operands):
            result = _all(evaluate(operand, values, in_list) for operand in operands)
        case AnyOf(operands=operands):
            result = _any(evaluate(operand, values, in_list) for operand in operands)
    return result


def _all(results: Iterable[bool | None]) -> bool | None:
    """false if any is false; else unknown if any is unknown; else true."""
    unknown = False
    for result in results:
        if result is False:
            return False
        unknown = unknown or result is None
    return None if unknown else True


def _any(results: Iterable[bool | None]) -> bool | None:
    """true if any is true; else unknown if any is unknown; else false."""
    unknown = False
    for result in results:
        if result is True:
            return True
        unknown = unknown or result is None
    return None if unknown else False


def _value(operand: AttributeRef | Literal, values: Mapping[str, AttributeValue]) -> AttributeValue:
    return values.get(operand.name) if isinstance(operand, AttributeRef) else operand.value


def _comparable_value(value: AttributeValue) -> Decimal | str | bool:
    if isinstance(value, bool | Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    return str(value).casefold()


_EQUALITY: dict[str, Callable[[object, object], bool]] = {"=": operator.eq, "!=": operator.ne}
_ORDER: dict[str, Callable[[Decimal, Decimal], bool]] = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _compare(left: AttributeValue, comparator: str, right: AttributeValue) -> bool | None:
    if left is None or right is None:
        return None
    a, b = _comparable_value(left), _comparable_value(right)
    if type(a) is not type(b):
        return None  # the checker refuses such a rule; a value of another type is as good as missing
    if comparator in _EQUALITY:
        return _EQUALITY[comparator](a, b)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return _ORDER[comparator](a, b)
    return None


def _member(value: AttributeValue, collection: ListRef | tuple[Literal, ...], in_list: ListLookup) -> bool | None:
    if value is None:
        return None
    if isinstance(collection, ListRef):
        return in_list(collection.name, value)
    return any(_compare(value, "=", literal.value) for literal in collection)


def first_match(rules: Sequence[Rule], values: Mapping[str, AttributeValue], in_list: ListLookup) -> int | None:
    """The index of the rule that decides: the first whose condition is true, in Radar's order
    of actions and then in the ruleset's order; None when none is (the attempt is allowed)."""
    for action in ACTION_ORDER:
        for index, rule in enumerate(rules):
            if rule.action == action and evaluate(rule.condition, values, in_list) is True:
                return index
    return None
