"""The objects the payments API returns: one definition each, for the answers the service
builds, the event payloads and the OpenAPI document (ADR 11)."""

from typing import Annotated, Literal

from pydantic import Field
from typing_extensions import TypedDict


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
    customer: str | None
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
