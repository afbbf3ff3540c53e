"""Request bodies of the ledger API (its answers are in `resources`). Unknown fields are
rejected, every field is bounded; amounts are integers of minor units, rates decimal strings."""

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from bastion.kernel.money import AMOUNT_MINOR_MAX
from bastion.ledger.domain import (
    BATCH_ENTRIES_MAX,
    HOLD_TIMEOUT_S_MAX,
    POSTINGS_MAX,
    POSTINGS_MIN,
    STRIPES_MAX,
    AccountDraft,
    AccountType,
    EntryDraft,
    FxQuote,
    PostingDraft,
)
from bastion.platform.http.schemas import FREE_TEXT, WHOLE, Currency, Metadata, id_schema

# Unix seconds up to the last second of year 9999.
UNIX_SECONDS_MAX = 253_402_300_799
FX_RATE_DIGITS_MAX = 24

AmountMinor = Annotated[int, Field(ge=1, le=AMOUNT_MINOR_MAX, description="Minor units of the currency, 1 to 2^63-1"), WHOLE]
UnixSeconds = Annotated[int, Field(ge=0, le=UNIX_SECONDS_MAX), WHOLE]
AccountId = Annotated[str, StringConstraints(min_length=1, max_length=64), Field(json_schema_extra=id_schema("la"))]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=255), FREE_TEXT]
Description = Annotated[str, StringConstraints(max_length=350), FREE_TEXT]


def _rate(value: str) -> str:
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise ValueError("must be a decimal number like '1.0842'") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError("must be a positive decimal number")
    if len(rate.as_tuple().digits) > FX_RATE_DIGITS_MAX:
        raise ValueError(f"at most {FX_RATE_DIGITS_MAX} significant digits")
    return value


def _moment(seconds: int | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Flags(_Strict):
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False


class AccountCreate(_Strict):
    currency: Currency
    type: Literal["asset", "liability", "equity", "revenue", "expense"]
    code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,64}$"), FREE_TEXT] | None = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=256), FREE_TEXT] | None = None
    exchange: bool = Field(False, description="Conversions between currencies pass through exchange accounts")
    flags: Flags = Field(default_factory=Flags)
    stripes: Annotated[int, Field(ge=1, le=STRIPES_MAX), WHOLE] = Field(
        1, description="Balance rows for a hot account; no limit flags when above 1"
    )
    metadata: Metadata = Field(default_factory=dict)

    def draft(self) -> AccountDraft:
        return AccountDraft(
            currency=self.currency,
            type=AccountType(self.type),
            code=self.code,
            name=self.name,
            exchange=self.exchange,
            debits_must_not_exceed_credits=self.flags.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits=self.flags.credits_must_not_exceed_debits,
            stripes=self.stripes,
            metadata=self.metadata,
        )


class PostingIn(_Strict):
    account: AccountId
    direction: Literal["debit", "credit"]
    amount_minor: AmountMinor
    currency: Currency


class FxIn(_Strict):
    from_currency: Currency
    to_currency: Currency
    rate: Annotated[
        str,
        StringConstraints(max_length=FX_RATE_DIGITS_MAX),
        AfterValidator(_rate),
        # What the validator takes, as the document says it: a positive decimal without exponent.
        Field(json_schema_extra={"pattern": r"^(?:[1-9][0-9]*(?:\.[0-9]+)?|0\.[0-9]*[1-9][0-9]*)$"}),
    ]
    source: Annotated[str, StringConstraints(min_length=1, max_length=100), FREE_TEXT]
    quoted_at: UnixSeconds


class EntryCreate(_Strict):
    reference: Reference | None = Field(None, description="Your id for the entry: the same reference and content post once")
    description: Description | None = None
    metadata: Metadata = Field(default_factory=dict)
    effective_at: UnixSeconds | None = Field(None, description="When the entry takes effect (Unix seconds); now if left out")
    postings: list[PostingIn] = Field(min_length=POSTINGS_MIN, max_length=POSTINGS_MAX)
    pending: bool = Field(False, description="A hold: reserve now, post, void or let expire later")
    timeout_s: Annotated[int, Field(ge=1, le=HOLD_TIMEOUT_S_MAX), WHOLE] | None = Field(
        None, description="Seconds until a hold expires"
    )
    fx: FxIn | None = None

    def draft(self) -> EntryDraft:
        fx = self.fx
        return EntryDraft(
            postings=tuple(PostingDraft(p.account, p.direction, p.amount_minor, p.currency) for p in self.postings),
            reference=self.reference,
            description=self.description,
            metadata=self.metadata,
            effective_at=_moment(self.effective_at),
            pending=self.pending,
            timeout_s=self.timeout_s,
            fx=FxQuote(fx.from_currency, fx.to_currency, Decimal(fx.rate), fx.source, datetime.fromtimestamp(fx.quoted_at, UTC))
            if fx is not None
            else None,
        )


class BatchCreate(_Strict):
    entries: list[EntryCreate] = Field(min_length=1, max_length=BATCH_ENTRIES_MAX)


class HoldPost(_Strict):
    amount_minor: AmountMinor | None = Field(None, description="Post less than held (two-posting holds); the rest is released")


class EntryReverse(_Strict):
    description: Description | None = None
