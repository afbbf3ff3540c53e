"""The objects the ledger API returns: one definition each, for the answers the modules
build, the event payloads and the OpenAPI document (ADR 11)."""

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict

AccountTypeName = Literal["asset", "liability", "equity", "revenue", "expense"]
EntryType = Literal["standard", "pending", "post_pending", "void_pending", "expire_pending", "reversal"]
EntryStatus = Literal["posted", "pending", "voided", "expired"]


class AccountFlags(TypedDict):
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool


class Account(TypedDict):
    id: str
    object: Literal["ledger.account"]
    currency: str
    type: AccountTypeName
    code: str | None
    name: str | None
    exchange: bool
    flags: AccountFlags
    stripes: int
    closed: bool
    metadata: dict[str, str]
    created: int
    livemode: bool


class AccountList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Account]
    has_more: bool


class Posting(TypedDict):
    account: str
    direction: Literal["debit", "credit"]
    amount_minor: int
    currency: str


class Fx(TypedDict):
    from_currency: str
    to_currency: str
    rate: Annotated[str, Field(description="Units of to_currency for one unit of from_currency, a decimal string")]
    source: str
    quoted_at: int


class Entry(TypedDict):
    id: str
    object: Literal["ledger.entry"]
    type: EntryType
    status: Annotated[EntryStatus, Field(description="A hold past its expiry reads expired before the job releases it")]
    reference: str | None
    description: str | None
    metadata: dict[str, str]
    postings: list[Posting]
    effective_at: int
    expires_at: int | None
    pending_entry: str | None
    resolved_by: str | None
    reverses: str | None
    reversed_by: str | None
    fx: Fx | None
    created: int
    livemode: bool


class EntryList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Entry]
    has_more: bool


class BatchResult(TypedDict):
    index: int
    result: Literal["created", "exists"]
    id: str


class Batch(TypedDict):
    object: Literal["ledger.batch"]
    results: list[BatchResult]


class Balance(TypedDict):
    object: Literal["ledger.balance"]
    account: str
    currency: str
    as_of: int | None
    debits_posted: int
    credits_posted: int
    debits_pending: int
    credits_pending: int
    posted: int
    pending: int
    available: int
    livemode: bool


class StatementLine(TypedDict):
    entry: str
    effective_at: int
    debit_minor: int
    credit_minor: int
    balance_minor: int


class Statement(TypedDict):
    object: Literal["ledger.statement"]
    account: str
    currency: str
    opening_balance_minor: int
    data: list[StatementLine]
    has_more: bool
