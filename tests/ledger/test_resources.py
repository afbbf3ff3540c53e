"""The ledger builds exactly the resources its routes document (ADR 11)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import get_args

from bastion.ledger import accounts, entries
from bastion.ledger.domain import AccountType, Counters, EntryDraft, EntryKind, FxQuote, PostingDraft, new_plan
from bastion.ledger.resources import Account, AccountList, AccountTypeName, Balance, Entry, EntryType
from bastion.ledger.routes import router
from tests.support.resources import check_resource, documented_properties

CREATED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ACCOUNT_ROW = {
    "id": "la_0000000000000000000000000001",
    "merchant_id": "mer_0000000000000000000000000001",
    "livemode": False,
    "currency": "EUR",
    "type": "liability",
    "code": "wallet:42",
    "name": "Wallet",
    "exchange": False,
    "debits_must_not_exceed_credits": True,
    "credits_must_not_exceed_debits": False,
    "stripes": 1,
    "metadata": {"owner": "42"},
    "created_at": CREATED_AT,
    "closed_at": None,
}
POSTINGS = (PostingDraft("la_a", "debit", 10_000, "EUR"), PostingDraft("la_b", "credit", 10_000, "EUR"))


def test_account_resource() -> None:
    result = accounts.account_resource(ACCOUNT_ROW)
    check_resource(Account, result, documented_properties(router)["Account"])
    assert result["flags"] == {"debits_must_not_exceed_credits": True, "credits_must_not_exceed_debits": False}
    assert result["closed"] is False


def test_account_list() -> None:
    result = accounts.account_list([ACCOUNT_ROW], has_more=False)
    check_resource(AccountList, result, documented_properties(router)["AccountList"])
    assert result["url"] == "/v1/ledger/accounts"


def test_balance_resource() -> None:
    counters = Counters(debits_posted=5, credits_posted=100, debits_pending=20)
    result = accounts.balance_resource(ACCOUNT_ROW, counters, as_of=CREATED_AT)
    check_resource(Balance, result, documented_properties(router)["Balance"])
    assert (result["posted"], result["pending"], result["available"], result["as_of"]) == (95, -20, 75, 1735787045)


def test_entry_resource_of_a_new_hold() -> None:
    plan = new_plan(EntryDraft(postings=POSTINGS, pending=True, timeout_s=60, reference="order-1"), CREATED_AT)
    result = entries.entry_resource(plan, created_at=CREATED_AT, livemode=False, moment=CREATED_AT)
    check_resource(Entry, result, documented_properties(router)["Entry"])
    assert (result["type"], result["status"], result["expires_at"]) == ("pending", "pending", 1735787045 + 60)
    later = entries.entry_resource(plan, created_at=CREATED_AT, livemode=False, moment=CREATED_AT + timedelta(seconds=60))
    assert later["status"] == "expired", "a hold past its expiry reads expired before the job releases it"


def test_entry_resource_with_fx_and_its_resolution() -> None:
    quote = FxQuote("EUR", "USD", Decimal("1.0842"), "ecb", CREATED_AT)
    plan = new_plan(EntryDraft(postings=POSTINGS, pending=True, fx=quote), CREATED_AT)
    result = entries.entry_resource(
        plan,
        created_at=CREATED_AT,
        livemode=True,
        moment=CREATED_AT,
        resolution=EntryKind.POST_PENDING,
        resolved_by="le_0000000000000000000000000002",
    )
    check_resource(Entry, result, documented_properties(router)["Entry"])
    assert result["status"] == "posted"
    assert result["fx"] == {
        "from_currency": "EUR",
        "to_currency": "USD",
        "rate": "1.0842",
        "source": "ecb",
        "quoted_at": 1735787045,
    }


def test_the_documented_enums_are_the_domain_s() -> None:
    assert set(get_args(EntryType)) == {kind.value for kind in EntryKind}
    assert set(get_args(AccountTypeName)) == {kind.value for kind in AccountType}
