"""The official Stripe Python SDK pointed at a live Bastion (`tests.support.serve`), as a team that
moves from Stripe points it: a base address and a secret key; and what the SDKs' webhook
verifiers are given: a delivery of Bastion's, as a receiver got it."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import stripe

from tests.support.asgi import request_body, serving
from tests.support.platform import Credentials
from tests.support.receivers import Received, Receiver
from tests.support.serve import LiveBastion

# The sandbox's test cards (docs/payments.md).
VISA = "4242424242424242"
MASTERCARD = "5555555555554444"
INSUFFICIENT_FUNDS = "4000000000009995"
# How long a delivery may take: the worker's relay and sender poll, then one attempt.
DELIVERY_TIMEOUT_S = 30
_POLL_S = 0.1
_FORWARD_TIMEOUT_S = 20
# What the front answers in place of Bastion's first answer.
_LOST_ANSWER = b'{"error": {"type": "api_error", "message": "The answer was lost on its way"}}'
# What the front sets itself rather than passes on (httpx has decoded the body).
_HOP_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection"})


def sdk_client(base_url: str, secret: str, *, max_network_retries: int = 0) -> stripe.StripeClient:
    """The SDK as a merchant configures it for Bastion: no retries unless asked, so that a test
    sees each answer."""
    return stripe.StripeClient(secret, base_addresses={"api": base_url}, max_network_retries=max_network_retries)


def payment_method(bastion: LiveBastion, client: stripe.StripeClient, shop: Credentials, number: str = VISA) -> str:
    """A payment method of `number`: tokenized at the vault with the publishable key, then
    created through the SDK from the token."""
    token = bastion.card_token(shop, number)
    created = client.v1.payment_methods.create({"type": "card", "card": {"token": token}})
    return created.id


@dataclass(frozen=True)
class Forwarded:
    idempotency_key: str | None
    body: bytes
    # Whether Bastion's answer was a replay (`Idempotent-Replayed: true`).
    replayed: bool


@dataclass
class RetryingFront:
    """An ASGI app in front of the API that forwards every request, and loses Bastion's answer to
    the first POST: it answers 503 instead, which the SDK retries (when its retries are on)."""

    upstream: str
    forwarded: list[Forwarded] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await request_body(receive)
        headers = [(name.decode(), value.decode()) for name, value in scope["headers"] if name != b"host"]
        target = f"{self.upstream}{scope['path']}" + (f"?{scope['query_string'].decode()}" if scope["query_string"] else "")
        async with httpx.AsyncClient(timeout=_FORWARD_TIMEOUT_S) as client:
            answer = await client.request(scope["method"], target, headers=headers, content=body)
        if scope["method"] == "POST":
            self.forwarded.append(
                Forwarded(dict(headers).get("idempotency-key"), body, answer.headers.get("idempotent-replayed") == "true")
            )
        if scope["method"] == "POST" and len(self.forwarded) == 1:
            status, content, passed = (
                503,
                b'{"error": {"type": "api_error", "message": "lost"}}',
                [("content-type", "application/json")],
            )
        else:
            status, content = answer.status_code, answer.content
            passed = [(name, value) for name, value in answer.headers.items() if name not in _HOP_HEADERS]
        headers_out = [(name.encode(), value.encode()) for name, value in passed]
        headers_out.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": content})


@dataclass(frozen=True)
class SignedDelivery:
    """A webhook as Bastion delivered it, and the secret that verifies it."""

    payload: bytes
    signature: str
    secret: str
    payment_intent: str


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that answers 200, from a thread of its own."""
    receiver = Receiver()
    with serving(receiver, name="webhook receiver") as port:
        receiver.url = f"http://127.0.0.1:{port}"
        yield receiver


def _received(receiver: Receiver, path: str) -> Received:
    """The first request to `path`, once it arrived; fails after DELIVERY_TIMEOUT_S."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while not (arrived := receiver.at(path)):
        assert time.monotonic() < deadline, f"no delivery to {path} within {DELIVERY_TIMEOUT_S} s"
        time.sleep(_POLL_S)
    return arrived[0]


def stripe_signed_delivery(bastion: LiveBastion, shop: Credentials) -> SignedDelivery:
    """A real payment's `payment_intent.succeeded`, delivered by the server's worker to an
    endpoint that signs as Stripe does (`Stripe-Signature`)."""
    client = sdk_client(bastion.serve.api_url, shop.secret)
    with receiving() as receiver:
        endpoint = client.v1.webhook_endpoints.create(
            {
                "url": f"{receiver.url}/stripe",
                "enabled_events": ["payment_intent.succeeded"],
                # Bastion's own parameter: Standard Webhooks is its default scheme.
                "signature_scheme": "stripe",  # type: ignore[typeddict-unknown-key]
            }
        )
        intent = client.v1.payment_intents.create(
            {"amount": 1250, "currency": "eur", "payment_method": payment_method(bastion, client, shop), "confirm": True}
        )
        delivered = _received(receiver, "/stripe")
    assert endpoint.secret is not None
    return SignedDelivery(delivered.body, delivered.headers["stripe-signature"], endpoint.secret, intent.id)
