"""Request bodies of the payments API. Unknown fields are rejected, every field is bounded."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bastion.platform.http.schemas import MetadataChanges, id_schema


class CardToken(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token: Annotated[str, StringConstraints(max_length=64)] = Field(
        json_schema_extra=id_schema("tok"), description="A single-use card token, tok_..., from bastion.js"
    )


class PaymentMethodCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["card"]
    card: CardToken
    customer: Annotated[str, StringConstraints(max_length=64), Field(json_schema_extra=id_schema("cus"))] | None = None
    metadata: MetadataChanges = Field(default_factory=dict)
