"""The rules language on its own: what parses, what the checker refuses and where, three-valued
logic by its truth tables, Radar's order of actions, and fuzzing that finds no input the parser
answers with anything but `RuleInvalid`."""

from collections.abc import Mapping
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.risk.attributes import CATALOGUE, ListKind, ValueType
from bastion.risk.rules import (
    NESTING_MAX,
    RULE_LENGTH_MAX,
    Action,
    AttributeValue,
    Rule,
    RuleInvalid,
    check_rule,
    evaluate,
    first_match,
    parse_rule,
)

LISTS = {"vip_emails": ListKind.EMAIL, "blocked_ips": ListKind.IP, "risky_countries": ListKind.COUNTRY}
VIP = "ada@example.com"


def _in_list(name: str, value: AttributeValue) -> bool:
    return name == "vip_emails" and value == VIP


def _rule(text: str) -> Rule:
    rule = parse_rule(text)
    check_rule(rule, LISTS)
    return rule


def _matches(text: str, values: Mapping[str, AttributeValue]) -> bool | None:
    return evaluate(_rule(text).condition, values, _in_list)


def test_the_issues_examples_parse_check_and_evaluate() -> None:
    foreign_and_large = {"card_country": "US", "ip_country": "GB", "amount_in_usd": Decimal("500.01")}
    assert _matches("block if :card_country: != :ip_country: and :amount_in_usd: > 500", foreign_and_large) is True
    assert (
        _matches("block if :card_country: != :ip_country: and :amount_in_usd: > 500", foreign_and_large | {"ip_country": "us"})
        is False
    )
    assert _matches("review if :charges_per_card_hourly: > 3", {"charges_per_card_hourly": 4}) is True
    assert (
        _matches("request_3ds if :is_new_device: and :amount_in_usd: > 100", {"is_new_device": True, "amount_in_usd": 101})
        is True
    )
    assert _matches("allow if :customer_email: in @vip_emails", {"customer_email": VIP}) is True
    assert _matches("allow if :customer_email: in @vip_emails", {"customer_email": "eve@example.com"}) is False


def test_the_rule_knows_its_action_attributes_and_lists() -> None:
    rule = _rule(
        "REQUEST_3DS IF (:card_brand: IN ('visa', 'amex') OR :customer_email: NOT IN @vip_emails) AND NOT :is_new_device:"
    )
    assert rule.action == Action.REQUEST_3DS
    assert rule.attributes() == {"card_brand", "customer_email", "is_new_device"}
    assert rule.lists() == {"vip_emails"}


@pytest.mark.parametrize(
    ("text", "reason", "column"),
    [
        ("", "A rule starts with its action", 1),
        ("blok if :amount: > 3", "A rule starts with its action", 1),
        ("block if", "The rule ends too early", 9),
        ("block if :amount: >", "The rule ends too early", 20),
        ("block if :amount > 3", "Unexpected character ':'", 10),
        ("block if :amount: >> 3", "Unexpected '>'", 20),
        ("block if :nope: > 3", "Unknown attribute :nope:", 10),
        ("allow if :customer_email: in @nope", "Unknown list @nope", 30),
        ("block if :amount: > 'x'", "Cannot compare a number with a string", 10),
        ("block if :card_brand: < 'visa'", "< compares numbers, not a string", 10),
        ("block if :amount:", ":amount: is a number, not a boolean", 10),
        ("block if 3 > 2", "A comparison names at least one attribute", 10),
        (
            "allow if :card_country: in @vip_emails",
            "@vip_emails is a list of email; :card_country: is looked up in a list of country",
            10,
        ),
        ("allow if 'x' in @vip_emails", "in looks up an attribute", 10),
        ("block if :amount: in (1, 'two')", ":amount: is a number: the list's values must be too", 26),
        ("block if :amount: > 1e5", "Unexpected character '1'", 21),
    ],
)
def test_a_refused_rule_says_why_and_where(text: str, reason: str, column: int) -> None:
    with pytest.raises(RuleInvalid) as refused:
        _rule(text)
    assert refused.value.reason.startswith(reason), refused.value.reason
    assert (refused.value.line, refused.value.column) == (1, column)


def test_a_position_on_a_later_line() -> None:
    with pytest.raises(RuleInvalid) as refused:
        _rule("block if :amount: > 500\n  and :nope: = 'x'")
    assert (refused.value.line, refused.value.column) == (2, 7)


def test_limits_of_length_nesting_and_literal_lists() -> None:
    with pytest.raises(RuleInvalid, match="at most 2000 characters"):
        parse_rule("block if " + " or ".join([":amount: > 1"] * 200))
    assert len("block if " + " or ".join([":amount: > 1"] * 100)) <= RULE_LENGTH_MAX
    with pytest.raises(RuleInvalid, match="nests at most"):
        parse_rule("block if " + "not " * (NESTING_MAX + 2) + ":is_new_device:")
    parse_rule("block if " + "not " * (NESTING_MAX - 1) + ":is_new_device:")
    with pytest.raises(RuleInvalid, match="at most 100 values"):
        parse_rule("block if :amount: in (" + ", ".join(["1"] * 101) + ")")


# Three-valued logic: T, F and U (unknown) from a boolean attribute true, false or missing.
_TRUTH = {"T": True, "F": False, "U": None}


@pytest.mark.parametrize(
    ("a", "b", "conjunction", "disjunction"),
    [
        ("T", "T", "T", "T"),
        ("T", "F", "F", "T"),
        ("T", "U", "U", "T"),
        ("F", "T", "F", "T"),
        ("F", "F", "F", "F"),
        ("F", "U", "F", "U"),
        ("U", "T", "U", "T"),
        ("U", "F", "F", "U"),
        ("U", "U", "U", "U"),
    ],
)
def test_and_or_truth_tables(a: str, b: str, conjunction: str, disjunction: str) -> None:
    values = {"is_new_device": _TRUTH[a], "is_pasted_card_number": _TRUTH[b]}
    assert _matches("block if :is_new_device: and :is_pasted_card_number:", values) is _TRUTH[conjunction]
    assert _matches("block if :is_new_device: or :is_pasted_card_number:", values) is _TRUTH[disjunction]


@pytest.mark.parametrize(("a", "negation"), [("T", "F"), ("F", "T"), ("U", "U")])
def test_not_truth_table(a: str, negation: str) -> None:
    assert _matches("block if not :is_new_device:", {"is_new_device": _TRUTH[a]}) is _TRUTH[negation]


@pytest.mark.parametrize(
    "text",
    [
        "block if :amount_in_usd: > 100",
        "block if :amount_in_usd: <= 100",
        "block if :card_country: = 'US'",
        "block if :card_country: != 'US'",
        "block if :card_country: != :ip_country:",
        "block if :card_country: in ('US', 'GB')",
        "block if :card_country: not in ('US', 'GB')",
        "allow if :customer_email: in @vip_emails",
        "allow if :customer_email: not in @vip_emails",
    ],
)
def test_a_missing_value_makes_a_comparison_unknown_and_the_rule_does_not_match(text: str) -> None:
    assert _matches(text, {}) is None
    assert first_match([_rule(text)], {}, _in_list) is None


def test_missing_is_asked_with_is_missing_which_is_never_unknown() -> None:
    assert _matches("block if is_missing(:ip_country:)", {}) is True
    assert _matches("block if is_missing(:ip_country:)", {"ip_country": "FR"}) is False
    assert _matches("block if IS_NOT_MISSING(:ip_country:)", {}) is False
    assert _matches("block if is_missing(:ip_country:) or :amount: > 1", {"amount": 0}) is True


def test_strings_compare_without_regard_to_case_and_numbers_by_value() -> None:
    assert _matches("block if :card_country: = 'us'", {"card_country": "US"}) is True
    assert _matches("block if :card_brand: = 'it\\'s'", {"card_brand": "IT'S"}) is True
    assert _matches("block if :amount: = 2000.00", {"amount": 2000}) is True
    assert _matches("block if :amount_in_usd: >= -0.5", {"amount_in_usd": Decimal("-0.5")}) is True


def test_actions_are_taken_in_radars_order_then_the_rulesets() -> None:
    rules = [
        _rule("review if :amount: > 0"),
        _rule("block if :amount: > 10"),
        _rule("allow if :customer_email: in @vip_emails"),
        _rule("block if :amount: > 5"),
        _rule("request_3ds if :amount: > 1000"),
    ]
    assert first_match(rules, {"amount": 20, "customer_email": VIP}, _in_list) == 2
    assert first_match(rules, {"amount": 20}, _in_list) == 1
    assert first_match(rules, {"amount": 7}, _in_list) == 3
    assert first_match(rules, {"amount": 1}, _in_list) == 0
    assert first_match(rules, {"amount": 5000, "customer_email": VIP}, _in_list) == 4
    assert first_match(rules, {"amount": 0}, _in_list) is None


def test_the_catalogue_names_the_issues_velocity_counters_and_types_its_lists() -> None:
    for name in (
        "charges_per_card_hourly",
        "card_count_for_ip_daily",
        "declines_per_email_weekly",
        "attempts_per_device_all_time",
    ):
        assert CATALOGUE[name].type == ValueType.NUMBER
    assert CATALOGUE["ip_address"].list_kind == ListKind.IP
    assert all(attribute.description.endswith(".") for attribute in CATALOGUE.values())


# Fuzzing: any text, and text built from the language's own words, is parsed or refused with
# RuleInvalid; a parsed rule is checked or refused with RuleInvalid, and evaluates without error.

_WORDS = [
    "block", "allow", "review", "request_3ds", "if", "and", "or", "not", "in", "(", ")", ",", "=", "!=", "<", "<=", ">",
    ">=", ":amount:", ":card_country:", ":is_new_device:", ":nope:", "@vip_emails", "@nope", "'US'", '"x\\"y"', "12",
    "-3.5", "true", "FALSE", "is_missing", "IS_NOT_MISSING", "1e5", ":", "@", "'", "\n",
]  # fmt: skip
_VALUES: dict[str, AttributeValue] = {"amount": 3, "card_country": "US", "is_new_device": None}


def _parsed_or_refused(text: str) -> None:
    refusal: RuleInvalid | None = None
    try:
        rule = parse_rule(text)
        check_rule(rule, LISTS)
    except RuleInvalid as refused:
        refusal = refused
    if refusal is not None:
        assert refusal.line >= 1
        assert refusal.column >= 1
        return
    assert evaluate(rule.condition, _VALUES, _in_list) in (True, False, None)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_parsed_or_refused(text: str) -> None:
    _parsed_or_refused(text)


@settings(max_examples=1_000, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=40))
def test_any_sequence_of_the_languages_words_is_parsed_or_refused(words: list[str]) -> None:
    _parsed_or_refused(" ".join(["block", "if", *words]))
