"""The acquirer's request bodies (docs/payments.md, The acquirer's protocol). Card fields are
strings, as the vault's placeholders fill them into the JSON template."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from bastion.kernel.money import AMOUNT_MINOR_MAX
from bastion.platform.http.schemas import WHOLE, Currency

_REFERENCE = Field(min_length=1, max_length=64, pattern="^[A-Za-z0-9_:.-]+$")
Amount = Annotated[int, Field(ge=1, le=AMOUNT_MINOR_MAX), WHOLE]


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    number: str = Field(pattern="^[0-9]{12,19}$")
    exp_month: str = Field(pattern="^(0[1-9]|1[0-2])$")
    exp_year: str = Field(pattern="^[0-9]{4}$")
    cvc: str = Field(default="", pattern="^([0-9]{3,4})?$")


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    merchant: str = _REFERENCE
    reference: str = _REFERENCE
    amount: Amount
    currency: Currency
    capture: bool
    card: Card
    # Where the cardholder's browser goes after a 3-D Secure challenge, if one is asked.
    return_url: str | None = Field(default=None, max_length=2_048, pattern=r"^https?://[^\s]+$")
    # `required`: challenge the cardholder whatever the card (Bastion's risk engine asks it);
    # `automatic`: only when the issuer asks.
    three_d_secure: Literal["automatic", "required"] = "automatic"


class Capture(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: Amount


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    reference: str = _REFERENCE
    amount: Amount


EVIDENCE_FIELDS_MAX = 20
EVIDENCE_TEXT_MAX = 20_000


class DisputeEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    evidence: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=EVIDENCE_TEXT_MAX)]] = Field(
        max_length=EVIDENCE_FIELDS_MAX
    )
    submit: bool
