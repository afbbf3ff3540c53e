"""The objects the payments API returns: one definition each, for the answers the service
builds, the event payloads and the OpenAPI document (ADR 11)."""

from typing import Annotated, Any, Literal

from pydantic import Field
from typing_extensions import TypedDict

from bastion.customers import Customer, DeletedCustomer

# An id, or with `expand` the object it names (docs/stripe-compatibility.md).
_EXPANDABLE = Field(description="Expandable: the id, or with `expand` the object")


class PaymentMethodCard(TypedDict):
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    funding: str
    fingerprint: Annotated[
        str, Field(description="Same card, same merchant: same fingerprint (a keyed HMAC, never a hash of the number)")
    ]


class PaymentMethod(TypedDict):
    id: str
    object: Literal["payment_method"]
    type: Literal["card"]
    card: PaymentMethodCard
    customer: Annotated[str | Customer | DeletedCustomer | None, _EXPANDABLE]
    metadata: dict[str, str]
    created: int
    livemode: bool


class PaymentMethodList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[PaymentMethod]
    has_more: bool


class MerchantPrice(TypedDict):
    """What a merchant pays per capture in one currency: basis_points / 10,000 of it (rounded
    half up) plus fixed_minor, never more than the capture."""

    currency: str
    basis_points: int
    fixed_minor: int


class PaymentError(TypedDict):
    """Why the last attempt failed, as Stripe's `last_payment_error`."""

    type: Literal["card_error"]
    code: str
    decline_code: str | None
    message: str
    charge: str | None
    payment_method: str | None


class RedirectToUrl(TypedDict):
    url: str
    return_url: str | None


class NextAction(TypedDict):
    type: Literal["redirect_to_url"]
    redirect_to_url: RedirectToUrl


class PaymentIntent(TypedDict):
    id: str
    object: Literal["payment_intent"]
    amount: Annotated[int, Field(description="In the currency's minor unit (cents; yen for JPY; fils for KWD)")]
    amount_capturable: int
    amount_received: int
    currency: str
    status: Literal[
        "requires_payment_method",
        "requires_confirmation",
        "requires_action",
        "processing",
        "requires_capture",
        "canceled",
        "succeeded",
    ]
    capture_method: Literal["automatic", "manual"]
    connector_account: Annotated[str | None, Field(description="The connector account its attempts go through, if pinned")]
    customer: Annotated[str | Customer | DeletedCustomer | None, _EXPANDABLE]
    payment_method: Annotated[str | PaymentMethod | None, _EXPANDABLE]
    latest_charge: Annotated["str | Charge | None", _EXPANDABLE]
    last_payment_error: PaymentError | None
    next_action: NextAction | None
    cancellation_reason: str | None
    canceled_at: int | None
    description: str | None
    statement_descriptor: str | None
    metadata: dict[str, str]
    created: int
    livemode: bool


class PaymentIntentList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[PaymentIntent]
    has_more: bool


class ChargeRule(TypedDict):
    id: str
    action: Literal["allow", "block", "review", "request_3ds"]
    predicate: str


class ChargeOutcome(TypedDict):
    network_status: Literal["approved_by_network", "declined_by_network", "not_sent_to_network"] | None
    type: Literal["authorized", "manual_review", "issuer_declined", "blocked", "invalid", "unknown"]
    reason: str | None
    seller_message: str
    risk_level: Annotated[str, Field(description="normal, elevated, highest, or not_assessed (docs/risk.md)")]
    risk_score: Annotated[int | None, Field(description="0 to 100; null when not assessed")]
    rule: Annotated[ChargeRule | None, Field(description="The risk rule that decided, if one did")]


class Charge(TypedDict):
    id: str
    object: Literal["charge"]
    amount: int
    amount_captured: int
    amount_refunded: int
    currency: str
    status: Literal["pending", "succeeded", "failed"]
    paid: bool
    captured: bool
    refunded: bool
    disputed: bool
    payment_intent: Annotated["str | PaymentIntent", _EXPANDABLE]
    payment_method: str
    outcome: ChargeOutcome | None
    failure_code: str | None
    failure_message: str | None
    connector: Annotated[str, Field(description="The connector the attempt went through")]
    connector_account: Annotated[str | None, Field(description="The merchant's account at it (none for the sandbox acquirer)")]
    routing: Annotated[
        dict[str, Any] | None, Field(description="Why the attempt went there: the routing plan, the attempt's number, a failover")
    ]
    connector_reference: Annotated[str | None, Field(description="The processor's id of the attempt")]
    created: int
    livemode: bool


class ChargeList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Charge]
    has_more: bool


class CardErrorDetail(TypedDict):
    """A declined card (402): Bastion's error body, and why the issuer declined, the failed
    charge and the PaymentIntent as it now stands."""

    type: Literal["card_error"]
    code: str
    message: str
    param: str | None
    request_id: str | None
    decline_code: str | None
    charge: str
    payment_intent: PaymentIntent


class CardErrorBody(TypedDict):
    error: CardErrorDetail


class Refund(TypedDict):
    id: str
    object: Literal["refund"]
    amount: int
    currency: str
    charge: Annotated["str | Charge", _EXPANDABLE]
    payment_intent: Annotated["str | PaymentIntent", _EXPANDABLE]
    status: Literal["pending", "succeeded", "failed", "canceled"]
    reason: Literal["duplicate", "fraudulent", "requested_by_customer"] | None
    failure_reason: str | None
    metadata: dict[str, str]
    created: int
    livemode: bool


class RefundList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Refund]
    has_more: bool


DisputeStatus = Literal["warning_needs_response", "needs_response", "under_review", "won", "lost"]


class DisputeEvidenceDetails(TypedDict):
    due_by: Annotated[int, Field(description="Unix seconds by which evidence must be submitted")]
    has_evidence: bool
    past_due: bool
    submission_count: int


class Dispute(TypedDict):
    id: str
    object: Literal["dispute"]
    amount: int
    currency: str
    charge: str
    payment_intent: str
    status: DisputeStatus
    reason: str
    evidence: dict[str, str]
    evidence_details: DisputeEvidenceDetails
    is_charge_refundable: bool
    metadata: dict[str, str]
    created: int
    livemode: bool


class DisputeList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Dispute]
    has_more: bool


class Review(TypedDict):
    """A payment the risk engine sent to review (Stripe's Review)."""

    id: str
    object: Literal["review"]
    charge: str
    payment_intent: str
    open: bool
    opened_reason: Literal["rule"]
    reason: Annotated[str, Field(description="rule while open; then approved or refunded_as_fraud")]
    closed_reason: Literal["approved", "refunded_as_fraud"] | None
    rule: Annotated[str | None, Field(description="The risk rule that opened it (null: the failure policy)")]
    created: int
    livemode: bool


class ReviewList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[Review]
    has_more: bool


class BalanceAmount(TypedDict):
    amount: int
    currency: str


class Balance(TypedDict):
    """The merchant's funds by currency, derived from the ledger: `pending` captured and not
    settled yet (net of fees and refunds), `available` settled."""

    object: Literal["balance"]
    available: list[BalanceAmount]
    pending: list[BalanceAmount]
    livemode: bool


class BalanceTransaction(TypedDict):
    """One movement of the merchant's balance, written with the ledger entries that make it."""

    id: str
    object: Literal["balance_transaction"]
    amount: Annotated[int, Field(description="What moved, before the fee: a refund or a lost dispute is negative")]
    fee: Annotated[int, Field(description="The platform's fee in it (a capture's, or a dispute's)")]
    net: Annotated[int, Field(description="amount - fee: what the balance gained or lost")]
    currency: str
    type: Literal["charge", "refund", "adjustment"]
    source: Annotated[str, Field(description="The charge, refund or dispute it came from")]
    status: Literal["pending", "available"]
    available_on: Annotated[int, Field(description="Unix seconds: when it is (or is expected to be) available")]
    created: int
    livemode: bool


class BalanceTransactionList(TypedDict):
    object: Literal["list"]
    url: str
    data: list[BalanceTransaction]
    has_more: bool
