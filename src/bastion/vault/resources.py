"""What the vault answers and records: the token its public listener returns (one definition
for the answer the service builds and the route's OpenAPI, ADR 11), and the card-testing
signal its audit row and event carry."""

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


class CardTestingSignal(TypedDict):
    """A client that tried too many cards: the `object` of `radar.card_testing_suspected`."""

    id: str
    object: Literal["card_testing_signal"]
    subject: Literal["client_ip", "device", "publishable_key"]
    client_ip: str | None
    device: str | None
    publishable_key: str
    failures: int
    distinct_cards: int
    window_s: int
    throttled_until: int
    created: int
    livemode: bool
