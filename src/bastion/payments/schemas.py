"""Request bodies of the payments API. Unknown fields are rejected, every field is bounded."""

from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bastion.platform.http.schemas import FREE_TEXT, WHOLE, Currency, MetadataChanges, id_schema

# Stripe's bound: eight digits of the currency's minor unit.
AMOUNT_MAX = 99_999_999
RETURN_URL_LENGTH_MAX = 2_048
Amount = Annotated[int, Field(ge=1, le=AMOUNT_MAX), WHOLE]
CustomerId = Annotated[str, StringConstraints(max_length=64), Field(json_schema_extra=id_schema("cus"))]
PaymentMethodId = Annotated[str, StringConstraints(max_length=64), Field(json_schema_extra=id_schema("pm"))]
PaymentIntentId = Annotated[str, StringConstraints(max_length=64), Field(json_schema_extra=id_schema("pi"))]
ChargeId = Annotated[str, StringConstraints(max_length=64), Field(json_schema_extra=id_schema("ch"))]
ConnectorAccountId = Annotated[str, StringConstraints(max_length=64), Field(json_schema_extra=id_schema("ca"))]
CaptureMethod = Literal["automatic", "manual"]
Description = Annotated[str, StringConstraints(max_length=1_000), FREE_TEXT]
# What a card statement shows: Stripe's 22 characters, without the characters networks refuse.
StatementDescriptor = Annotated[str, StringConstraints(min_length=1, max_length=22, pattern=r"^[^<>\\'\"*]*$"), FREE_TEXT]
# Stripe's `expand`: fields answered with the object in place of its id, one level deep (Stripe
# goes four), each field of the object's own list (docs/stripe-compatibility.md).
EXPANSIONS_MAX = 4
Field_ = TypeVar("Field_", bound=str)
Expansions = Annotated[
    list[Field_], Field(max_length=EXPANSIONS_MAX, description="Fields to answer with the object in place of its id")
]
IntentExpansion = Literal["customer", "payment_method", "latest_charge"]
PaymentMethodExpansion = Literal["customer"]
ChargeExpansion = Literal["payment_intent"]
RefundExpansion = Literal["charge", "payment_intent"]
# The same on each object of a list: Stripe's `data.` prefix.
IntentListExpansion = Literal["data.customer", "data.payment_method", "data.latest_charge"]
PaymentMethodListExpansion = Literal["data.customer"]
ChargeListExpansion = Literal["data.payment_intent"]
RefundListExpansion = Literal["data.charge", "data.payment_intent"]
ReturnUrl = Annotated[
    str,
    StringConstraints(max_length=RETURN_URL_LENGTH_MAX, pattern=r"^https?://[^\s]+$"),
    Field(description="Where the customer's browser goes after a 3-D Secure challenge"),
]


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
    expand: Expansions[PaymentMethodExpansion] = Field(default_factory=list)


class PaymentIntentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: Amount
    currency: Currency
    customer: CustomerId | None = None
    payment_method: PaymentMethodId | None = None
    capture_method: CaptureMethod = "automatic"
    connector_account: ConnectorAccountId | None = Field(
        default=None, description="The connector account every attempt goes through; left out, routing decides (docs/routing.md)"
    )
    confirm: bool = Field(default=False, description="Confirm at once (needs payment_method)")
    return_url: ReturnUrl | None = None
    description: Description | None = None
    statement_descriptor: StatementDescriptor | None = None
    metadata: MetadataChanges = Field(default_factory=dict)
    expand: Expansions[IntentExpansion] = Field(default_factory=list)


class PaymentIntentUpdate(BaseModel):
    """Fields left out stay as they are; amount, currency, payment method and capture method
    only before the intent is authorized."""

    model_config = ConfigDict(extra="forbid", strict=True)

    amount: Amount | None = None
    currency: Currency | None = None
    customer: CustomerId | None = None
    payment_method: PaymentMethodId | None = None
    capture_method: CaptureMethod | None = None
    description: Description | None = None
    statement_descriptor: StatementDescriptor | None = None
    metadata: MetadataChanges = Field(default_factory=dict)
    expand: Expansions[IntentExpansion] = Field(default_factory=list)


class PaymentIntentConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    payment_method: PaymentMethodId | None = None
    return_url: ReturnUrl | None = None
    expand: Expansions[IntentExpansion] = Field(default_factory=list)


class PaymentIntentCapture(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount_to_capture: Amount | None = Field(default=None, description="At most amount_capturable; the rest is released")
    expand: Expansions[IntentExpansion] = Field(default_factory=list)


class PaymentIntentCancel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    cancellation_reason: Literal["duplicate", "fraudulent", "requested_by_customer", "abandoned"] | None = None
    expand: Expansions[IntentExpansion] = Field(default_factory=list)


class RefundCreate(BaseModel):
    """What to refund: a PaymentIntent (its latest charge) or a charge; `amount` defaults to all
    that is left of what was captured."""

    # One of the two is required: stated in the document as the service checks it.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "anyOf": [
                {"required": ["payment_intent"], "properties": {"payment_intent": {"type": "string", **id_schema("pi")}}},
                {"required": ["charge"], "properties": {"charge": {"type": "string", **id_schema("ch")}}},
            ]
        },
    )

    payment_intent: PaymentIntentId | None = None
    charge: ChargeId | None = None
    amount: Amount | None = None
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None = None
    metadata: MetadataChanges = Field(default_factory=dict)
    expand: Expansions[RefundExpansion] = Field(default_factory=list)


EVIDENCE_TEXT_MAX = 20_000
EvidenceText = Annotated[str, StringConstraints(max_length=EVIDENCE_TEXT_MAX), FREE_TEXT]


class DisputeEvidence(BaseModel):
    """What the merchant shows the issuer (a subset of Stripe's evidence fields); fields left out
    stay as they were."""

    model_config = ConfigDict(extra="forbid", strict=True)

    product_description: EvidenceText | None = None
    customer_name: EvidenceText | None = None
    customer_email_address: EvidenceText | None = None
    billing_address: EvidenceText | None = None
    shipping_tracking_number: EvidenceText | None = None
    refund_refusal_explanation: EvidenceText | None = None
    uncategorized_text: EvidenceText | None = Field(
        default=None, description="In test mode, `winning_evidence` in it wins the dispute; anything else loses it"
    )


class DisputeUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    evidence: DisputeEvidence | None = None
    metadata: MetadataChanges = Field(default_factory=dict)
    submit: bool = Field(default=False, description="Submit the evidence to the issuer now; it can no longer change")
