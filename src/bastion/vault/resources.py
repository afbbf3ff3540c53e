"""The token the vault's public listener returns: one definition for the answer the service
builds and the route's OpenAPI (ADR 11)."""

from typing import Literal

from typing_extensions import TypedDict


class TokenCard(TypedDict):
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    funding: str


class Token(TypedDict):
    id: str
    object: Literal["token"]
    card: TokenCard
    created: int
    expires_at: int
    livemode: bool
