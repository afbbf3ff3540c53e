"""Request bodies of the payments API. Unknown fields are rejected, every field is bounded."""

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from bastion.platform.http.schemas import checked_metadata

# A metadata value of null (or "") removes that key on update.
Metadata = Annotated[dict[str, str | None], AfterValidator(checked_metadata)]


class CardToken(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="A single-use card token, tok_..., from bastion.js"
    )


class PaymentMethodCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["card"]
    card: CardToken
    customer: Annotated[str, StringConstraints(max_length=64)] | None = None
    metadata: Metadata = Field(default_factory=dict)
