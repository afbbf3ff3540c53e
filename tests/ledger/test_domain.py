"""The ledger's pure rules, without a database: what the posting engine accepts, refuses
and computes, each refusal by its class, code and field."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.kernel.money import AMOUNT_MINOR_MAX
from bastion.ledger import errors
from bastion.ledger.domain import (
    EFFECTIVE_AT_SKEW_S,
    HOLD_TIMEOUT_S_DEFAULT,
    HOLD_TIMEOUT_S_MAX,
    AccountDraft,
    AccountType,
    Balance,
    BalanceKey,
    Counters,
    EntryDraft,
    EntryKind,
    FxQuote,
    HeldPosting,
    Limits,
    LockedAccount,
    Plan,
    PostingDraft,
    already_resolved,
    apply,
    check_draft,
    check_fx,
    evaluate,
    first_difference,
    mirrored,
    new_plan,
    rejection,
    resolution_plan,
    reversal_plan,
)

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
CASH, WALLET, FEES = "la_cash", "la_wallet", "la_fees"
NO_LIMITS = Limits(debits_must_not_exceed_credits=False, credits_must_not_exceed_debits=False)
WALLET_LIMIT = Limits(debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=False)


def transfer(debit: str, credit: str, amount_minor: int, currency: str = "EUR") -> tuple[PostingDraft, PostingDraft]:
    return (PostingDraft(debit, "debit", amount_minor, currency), PostingDraft(credit, "credit", amount_minor, currency))


def account(*, currency: str = "EUR", limits: Limits = NO_LIMITS, closed: bool = False, stripes: int = 1) -> LockedAccount:
    return LockedAccount(currency=currency, exchange=False, closed=closed, stripes=stripes, limits=limits)


def book() -> tuple[dict[str, LockedAccount], dict[BalanceKey, Counters]]:
    """Cash, and a wallet holding 100 that may not go below zero."""
    accounts = {CASH: account(), WALLET: account(limits=WALLET_LIMIT)}
    balances = {(CASH, 0): Counters(debits_posted=100), (WALLET, 0): Counters(credits_posted=100)}
    return accounts, balances


def refusal(error: pytest.ExceptionInfo[errors.LedgerRejected]) -> tuple[str, str | None]:
    return error.value.code, error.value.param


# Drafts


def test_a_balanced_draft_passes() -> None:
    check_draft(EntryDraft(postings=transfer(CASH, WALLET, 5)), NOW)


@pytest.mark.parametrize("amount_minor", [0, -1, AMOUNT_MINOR_MAX + 1])
def test_amounts_out_of_bounds_name_their_posting(amount_minor: int) -> None:
    postings = (PostingDraft(CASH, "debit", 5, "EUR"), PostingDraft(WALLET, "credit", amount_minor, "EUR"))
    with pytest.raises(errors.LedgerRejected) as error:
        check_draft(EntryDraft(postings=postings), NOW)
    assert refusal(error) == ("parameter_invalid", "postings[1][amount_minor]")


def test_unbalanced_postings_are_refused() -> None:
    postings = (PostingDraft(CASH, "debit", 5, "EUR"), PostingDraft(WALLET, "credit", 4, "EUR"))
    with pytest.raises(errors.EntryUnbalanced, match="debits exceed credits by 1") as error:
        check_draft(EntryDraft(postings=postings), NOW)
    assert refusal(error) == ("entry_unbalanced", "postings")


def test_three_currencies_are_too_many() -> None:
    postings = (*transfer(CASH, WALLET, 1, "EUR"), *transfer(CASH, WALLET, 1, "USD"), *transfer(CASH, WALLET, 1, "GBP"))
    with pytest.raises(errors.TooManyCurrencies):
        check_draft(EntryDraft(postings=postings), NOW)


def test_effective_at_may_be_ahead_by_the_skew_only() -> None:
    check_draft(EntryDraft(postings=transfer(CASH, WALLET, 1), effective_at=NOW + timedelta(seconds=EFFECTIVE_AT_SKEW_S)), NOW)
    ahead = NOW + timedelta(seconds=EFFECTIVE_AT_SKEW_S + 1)
    with pytest.raises(errors.EffectiveAtFuture) as error:
        check_draft(EntryDraft(postings=transfer(CASH, WALLET, 1), effective_at=ahead), NOW)
    assert refusal(error) == ("effective_at_future", "effective_at")


@pytest.mark.parametrize(
    ("pending", "timeout_s", "code"),
    [(False, 60, "timeout_without_hold"), (True, 0, "parameter_invalid"), (True, HOLD_TIMEOUT_S_MAX + 1, "parameter_invalid")],
    ids=["not a hold", "zero", "too long"],
)
def test_timeout_is_for_holds_within_bounds(pending: bool, timeout_s: int, code: str) -> None:
    with pytest.raises(errors.LedgerRejected) as error:
        check_draft(EntryDraft(postings=transfer(CASH, WALLET, 1), pending=pending, timeout_s=timeout_s), NOW)
    assert refusal(error) == (code, "timeout_s")


def test_a_hold_expires_after_its_timeout_or_the_default() -> None:
    assert new_plan(
        EntryDraft(postings=transfer(CASH, WALLET, 1), pending=True, timeout_s=60), NOW
    ).expires_at == NOW + timedelta(seconds=60)
    default = new_plan(EntryDraft(postings=transfer(CASH, WALLET, 1), pending=True), NOW)
    assert (default.kind, default.expires_at) == (EntryKind.PENDING, NOW + timedelta(seconds=HOLD_TIMEOUT_S_DEFAULT))
    standard = new_plan(EntryDraft(postings=transfer(CASH, WALLET, 1)), NOW)
    assert (standard.kind, standard.expires_at, standard.effective_at) == (EntryKind.STANDARD, None, NOW)


# Applying plans to locked balances


def test_a_transfer_moves_the_four_counters() -> None:
    accounts, balances = book()
    after = apply(new_plan(EntryDraft(postings=transfer(CASH, WALLET, 30)), NOW), accounts, balances, seed=0)
    assert after == {(CASH, 0): Counters(debits_posted=130), (WALLET, 0): Counters(credits_posted=130)}


def test_a_hold_moves_pending_counters_only() -> None:
    accounts, balances = book()
    after = apply(new_plan(EntryDraft(postings=transfer(WALLET, CASH, 30), pending=True), NOW), accounts, balances, seed=0)
    assert after[(WALLET, 0)] == Counters(credits_posted=100, debits_pending=30)
    assert after[(CASH, 0)] == Counters(debits_posted=100, credits_pending=30)


@pytest.mark.parametrize(
    ("accounts", "code", "param"),
    [
        ({WALLET: account()}, "account_missing", "postings[0][account]"),
        ({CASH: account(closed=True), WALLET: account()}, "account_closed", "postings[0][account]"),
        ({CASH: account(), WALLET: account(currency="USD")}, "currency_mismatch", "postings[1][currency]"),
    ],
    ids=["missing", "closed", "currency"],
)
def test_postings_must_reach_open_accounts_in_their_currency(
    accounts: Mapping[str, LockedAccount], code: str, param: str
) -> None:
    _, balances = book()
    with pytest.raises(errors.LedgerRejected) as error:
        apply(new_plan(EntryDraft(postings=transfer(CASH, WALLET, 1)), NOW), accounts, balances, seed=0)
    assert refusal(error) == (code, param)


def test_a_limited_account_cannot_go_below_zero() -> None:
    accounts, balances = book()
    apply(new_plan(EntryDraft(postings=transfer(WALLET, CASH, 100)), NOW), accounts, balances, seed=0)
    with pytest.raises(errors.ExceedsCredits, match="insufficient funds") as error:
        apply(new_plan(EntryDraft(postings=transfer(WALLET, CASH, 101)), NOW), accounts, balances, seed=0)
    assert refusal(error) == ("exceeds_credits", "postings[0]")


def test_credits_limit_is_the_mirror() -> None:
    limits = Limits(debits_must_not_exceed_credits=False, credits_must_not_exceed_debits=True)
    assert limits.breach(Counters(debits_posted=10, credits_posted=10)) is None
    assert limits.breach(Counters(debits_posted=10, credits_posted=5, credits_pending=6)) is errors.ExceedsDebits


def test_a_balance_past_2_63_overflows() -> None:
    accounts, _ = book()
    balances = {(CASH, 0): Counters(debits_posted=AMOUNT_MINOR_MAX), (WALLET, 0): Counters()}
    with pytest.raises(errors.BalanceOverflow) as error:
        apply(new_plan(EntryDraft(postings=transfer(CASH, WALLET, 1)), NOW), accounts, balances, seed=0)
    assert refusal(error) == ("balance_overflow", "postings[0]")


def test_the_seed_picks_the_stripe_of_a_striped_account() -> None:
    accounts = {CASH: account(stripes=4), WALLET: account()}
    balances = {**{(CASH, stripe): Counters() for stripe in range(4)}, (WALLET, 0): Counters()}
    after = apply(new_plan(EntryDraft(postings=transfer(CASH, WALLET, 1)), NOW), accounts, balances, seed=7)
    assert set(after) == {(CASH, 3), (WALLET, 0)}


def test_each_plan_sees_the_balances_the_plans_before_it_left() -> None:
    accounts, balances = book()
    plans = [(index, new_plan(EntryDraft(postings=transfer(WALLET, CASH, 60)), NOW)) for index in range(2)]
    after, refused = evaluate(plans, accounts, balances, seed=0)
    assert list(refused) == [1], "the second 60 finds 40 left"
    assert isinstance(refused[1], errors.ExceedsCredits)
    assert after[(WALLET, 0)] == Counters(debits_posted=60, credits_posted=100)
    assert balances[(WALLET, 0)] == Counters(credits_posted=100), "the locked balances are not changed in place"


def test_a_batch_rejection_names_the_field_inside_its_entry() -> None:
    failures = {
        3: errors.AccountMissing("No such ledger account", param="postings[1][account]"),
        0: errors.EntryUnbalanced("unbalanced", param="postings"),
    }
    batch = rejection(failures, as_batch=True)
    assert (batch.code, batch.param) == ("batch_rejected", "entries[0][postings]")
    assert [item["index"] for item in batch.results or []] == [0, 3]
    assert batch.results is not None
    assert batch.results[1]["code"] == "account_missing"
    assert rejection({3: failures[3]}, as_batch=False) is failures[3]


# Currency conversion


def _conversion(rate: str, euros: int, dollars: int, *, fx_to: str = "USD") -> EntryDraft:
    quote = FxQuote("EUR", fx_to, Decimal(rate), "ecb", NOW)
    postings = (
        PostingDraft(CASH, "credit", euros, "EUR"),
        PostingDraft("la_fx_eur", "debit", euros, "EUR"),
        PostingDraft("la_fx_usd", "credit", dollars, "USD"),
        PostingDraft(WALLET, "debit", dollars, "USD"),
    )
    return EntryDraft(postings=postings, fx=quote)


EXCHANGE = {"la_fx_eur", "la_fx_usd"}


def test_a_conversion_at_its_rate_passes_within_one_minor_unit() -> None:
    check_fx(_conversion("1.0842", 10_000, 10_842), EXCHANGE)
    check_fx(_conversion("1.0842", 10_000, 10_843), EXCHANGE)
    with pytest.raises(errors.FxRateMismatch) as error:
        check_fx(_conversion("1.0842", 10_000, 10_844), EXCHANGE)
    assert refusal(error) == ("fx_rate_mismatch", "fx[rate]")


def test_a_conversion_needs_fx_of_its_currencies_and_exchange_accounts() -> None:
    with pytest.raises(errors.FxRequired):
        check_fx(EntryDraft(postings=_conversion("1", 1, 1).postings), EXCHANGE)
    with pytest.raises(errors.FxCurrencyMismatch):
        check_fx(_conversion("1", 1, 1, fx_to="GBP"), EXCHANGE)
    with pytest.raises(errors.ExchangeAccountRequired):
        check_fx(_conversion("1", 1, 1), {"la_fx_eur"})
    with pytest.raises(errors.FxUnexpected):
        check_fx(EntryDraft(postings=transfer(CASH, WALLET, 1), fx=FxQuote("EUR", "USD", Decimal(1), "ecb", NOW)), EXCHANGE)


# Holds and reversals

HELD = (HeldPosting(WALLET, 2, "debit", 60, "EUR"), HeldPosting(CASH, 0, "credit", 60, "EUR"))


def _resolve(kind: EntryKind, *, expired: bool = False, amount_minor: int | None = None) -> Plan:
    return resolution_plan(kind, "le_hold", HELD, None, expired=expired, amount_minor=amount_minor, moment=NOW)


def test_voiding_gives_the_reservation_back_on_its_stripes() -> None:
    plan = _resolve(EntryKind.VOID_PENDING)
    assert (plan.draft.postings, plan.pending_entry_id) == ((), "le_hold")
    assert plan.releases == ((WALLET, 2, Counters(debits_pending=-60)), (CASH, 0, Counters(credits_pending=-60)))


def test_posting_part_of_a_hold_posts_that_much_on_the_holding_stripes() -> None:
    plan = _resolve(EntryKind.POST_PENDING, amount_minor=25)
    assert [(p.account_id, p.direction, p.amount_minor) for p in plan.draft.postings] == [
        (WALLET, "debit", 25),
        (CASH, "credit", 25),
    ]
    assert plan.stripes == (2, 0)
    accounts = {CASH: account(), WALLET: account(limits=WALLET_LIMIT)}
    balances = {(WALLET, 2): Counters(credits_posted=100, debits_pending=60), (CASH, 0): Counters(credits_pending=60)}
    after = apply(plan, accounts, balances, seed=0)
    assert after[(WALLET, 2)] == Counters(debits_posted=25, credits_posted=100), "the other 35 are released"


@pytest.mark.parametrize(
    ("amount_minor", "error_class", "code"),
    [(0, errors.LedgerRejected, "parameter_invalid"), (61, errors.AmountExceedsPending, "amount_exceeds_pending")],
)
def test_a_partial_post_is_within_the_hold(amount_minor: int, error_class: type[errors.LedgerRejected], code: str) -> None:
    with pytest.raises(error_class) as error:
        _resolve(EntryKind.POST_PENDING, amount_minor=amount_minor)
    assert refusal(error) == (code, "amount_minor")


def test_holds_expire_when_due_and_only_then() -> None:
    assert _resolve(EntryKind.EXPIRE_PENDING, expired=True).kind == EntryKind.EXPIRE_PENDING
    with pytest.raises(errors.HoldNotDue):
        _resolve(EntryKind.EXPIRE_PENDING, expired=False)
    for kind in (EntryKind.POST_PENDING, EntryKind.VOID_PENDING):
        with pytest.raises(errors.HoldExpired):
            _resolve(kind, expired=True)


def test_a_second_resolution_names_the_first() -> None:
    assert already_resolved("le_hold", EntryKind.VOID_PENDING).code == "hold_already_voided"
    assert already_resolved("le_hold", EntryKind.POST_PENDING).code == "hold_already_posted"
    assert already_resolved("le_hold", None).code == "hold_already_resolved"


def test_a_reversal_mirrors_the_postings_and_keeps_the_rate() -> None:
    original = _conversion("1.0842", 10_000, 10_842)
    plan = reversal_plan("le_1", EntryKind.STANDARD, original, reversed_by=None, description="refund", moment=NOW)
    assert plan.draft.postings == mirrored(original.postings)
    assert (plan.kind, plan.reverses_entry_id, plan.draft.fx, plan.draft.reference) == (
        EntryKind.REVERSAL,
        "le_1",
        original.fx,
        None,
    )


@pytest.mark.parametrize(
    ("kind", "reversed_by", "code"),
    [
        (EntryKind.PENDING, None, "entry_is_hold"),
        (EntryKind.VOID_PENDING, None, "entry_not_reversible"),
        (EntryKind.REVERSAL, None, "entry_not_reversible"),
        (EntryKind.STANDARD, "le_2", "entry_already_reversed"),
    ],
)
def test_only_posted_money_is_reversed_once(kind: EntryKind, reversed_by: str | None, code: str) -> None:
    with pytest.raises(errors.LedgerRejected) as error:
        reversal_plan(
            "le_1", kind, EntryDraft(postings=transfer(CASH, WALLET, 1)), reversed_by=reversed_by, description=None, moment=NOW
        )
    assert refusal(error) == (code, "id")


# Replays, accounts and balances


def test_a_replay_differs_at_its_first_field() -> None:
    stored = EntryDraft(postings=transfer(CASH, WALLET, 5), reference="r1", effective_at=NOW)
    assert first_difference(stored, EntryDraft(postings=transfer(CASH, WALLET, 5), reference="r1")) is None
    assert first_difference(stored, EntryDraft(postings=transfer(CASH, WALLET, 6), reference="r1")) == "postings[0][amount_minor]"
    assert first_difference(stored, EntryDraft(postings=transfer(CASH, WALLET, 5), metadata={"a": "b"})) == "metadata"


@pytest.mark.parametrize(
    ("draft", "error_class"),
    [
        (
            AccountDraft("EUR", AccountType.ASSET, debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=True),
            errors.FlagsConflict,
        ),
        (AccountDraft("EUR", AccountType.ASSET, stripes=2, debits_must_not_exceed_credits=True), errors.StripesWithLimit),
        (AccountDraft("EUR", AccountType.ASSET, stripes=65), errors.LedgerRejected),
    ],
    ids=["both limits", "striped with limit", "too many stripes"],
)
def test_account_drafts_refuse_what_cannot_hold(draft: AccountDraft, error_class: type[errors.LedgerRejected]) -> None:
    with pytest.raises(error_class):
        draft.check()


def test_net_figures_follow_the_normal_side() -> None:
    counters = Counters(debits_posted=100, credits_posted=30, debits_pending=5, credits_pending=20)
    asset, liability = Balance(AccountType.ASSET, counters), Balance(AccountType.LIABILITY, counters)
    assert (asset.posted, asset.pending, asset.available) == (70, -15, 50)
    assert (liability.posted, liability.pending, liability.available) == (-70, 15, -75)


@given(
    st.lists(st.tuples(st.sampled_from([CASH, WALLET, FEES]), st.integers(1, 10**6)), min_size=1, max_size=10),
)
def test_mirrored_postings_undo_any_entry(moves: list[tuple[str, int]]) -> None:
    postings = tuple(p for account_id, amount in moves for p in transfer(account_id, FEES, amount))
    accounts = {name: account() for name in (CASH, WALLET, FEES)}
    zero = {(name, 0): Counters() for name in accounts}
    forward = apply(Plan(EntryKind.STANDARD, EntryDraft(postings=postings), NOW), accounts, zero, seed=0)
    back = apply(Plan(EntryKind.STANDARD, EntryDraft(postings=mirrored(postings)), NOW), accounts, forward, seed=0)
    for key, counters in back.items():
        assert counters.debits_posted - counters.credits_posted == 0, key
