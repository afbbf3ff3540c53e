"""The connector interface (shaped like Hyperswitch's): the flows a processor offers Bastion,
in Bastion's types. Each connector is a client plus transformers between its wire format and
these types; card data reaches it only through the vault's forward.

Every flow is safe to repeat with the same request: a command cut short calls it again (ADR
10), and the connector passes an idempotency key derived from Bastion's ids so that the
processor acts once.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from bastion.connectors import Capabilities
from bastion.kernel.errors import InvalidRequest
from bastion.platform.db import Tenant


class AttemptResult(enum.StrEnum):
    # The issuer asks the cardholder to authenticate (3-D Secure) at `Answer.redirect_url` first.
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    VOIDED = "voided"
    REFUNDED = "refunded"
    DECLINED = "declined"
    # Bastion could not send the attempt at all (the vault refused it): nothing happened at the processor.
    FAILED = "failed"
    # An answer Bastion cannot map, or whose amount or currency is not what was asked: the
    # attempt stays `processing`, nothing is posted, and a sync settles it.
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Authorization:
    charge_id: str
    card: str  # the vault's card id, never the card
    amount: int
    currency: str
    capture: bool
    # Where the cardholder's browser goes after a 3-D Secure challenge, if the issuer asks for one.
    return_url: str | None = None
    # The risk engine asks for a challenge whatever the issuer would do.
    three_d_secure_required: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """A processor's answer to one flow, in Bastion's terms."""

    result: AttemptResult
    reference: str | None = None
    decline_code: str | None = None
    message: str | None = None
    # The challenge page, when the result is `requires_action`.
    redirect_url: str | None = None
    # Nothing was charged and the connector's error table says another processor may be tried
    # (nothing sent, a provider error documented as not processed, a soft decline): routing's
    # failover may send the payment elsewhere. Never set with `unknown` (docs/routing.md).
    failover: bool = False

    def to_outcome(self) -> dict[str, Any]:
        return {
            "result": self.result.value,
            "reference": self.reference,
            "decline_code": self.decline_code,
            "message": self.message,
            "redirect_url": self.redirect_url,
            "failover": self.failover,
        }

    @classmethod
    def from_outcome(cls, outcome: dict[str, Any]) -> "Answer":
        return cls(
            AttemptResult(outcome["result"]),
            outcome["reference"],
            outcome["decline_code"],
            outcome["message"],
            outcome.get("redirect_url"),
            outcome.get("failover", False),
        )


@dataclass(frozen=True, slots=True)
class DisputeState:
    """A dispute as the processor tells it, in Bastion's terms."""

    reference: str  # the processor's id of the dispute
    status: str  # one of Bastion's dispute statuses
    amount: int
    currency: str
    reason: str
    evidence_due_by: int  # unix seconds


@dataclass(frozen=True, slots=True)
class SettlementLine:
    kind: str  # `capture`, `refund` or `dispute` (a lost one)
    reference: str  # Bastion's id the processor was given (a charge's for a capture or a dispute, a refund's)
    connector_id: str  # the processor's id of the item (of the dispute, for a dispute)
    amount: int  # positive; a capture counts for the merchant, the others against


@dataclass(frozen=True, slots=True)
class SettlementState:
    """A processor's payout of a merchant's items in one currency, in Bastion's terms."""

    reference: str
    currency: str
    settled_on: str  # ISO date
    net: int
    lines: tuple[SettlementLine, ...]


class Subject(enum.StrEnum):
    """What a notification is about."""

    PAYMENT = "payment"
    REFUND = "refund"
    DISPUTE = "dispute"
    SETTLEMENT = "settlement"


@dataclass(frozen=True, slots=True)
class Notification:
    """A processor's notification, verified, in Bastion's terms."""

    id: str
    type: str
    merchant_id: str
    livemode: bool
    subject: Subject
    # Bastion's id the processor was given: a charge's for a payment or a dispute, a refund's for a refund.
    reference: str
    # What it says of the payment's authorization, as the answer to `authorize` would; with the
    # amount and currency it names, which Bastion checks against its own.
    answer: Answer | None
    amount: int
    currency: str | None
    dispute: DisputeState | None = None
    settlement: SettlementState | None = None


class Connector(Protocol):
    name: str
    # As the connectors context declares it for this kind (the feature matrix, GET /v1/connectors).
    capabilities: Capabilities

    async def authorize(self, tenant: Tenant, request: Authorization) -> Answer: ...

    async def capture(self, tenant: Tenant, charge_id: str, reference: str, amount: int) -> Answer: ...

    async def void(self, tenant: Tenant, charge_id: str, reference: str) -> Answer: ...

    async def refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer: ...

    async def sync_refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        """What the processor did with the refund `refund_id` of its payment `reference`:
        refunded, failed (it holds none, or refused it) or unknown (it cannot tell yet)."""
        ...

    async def sync(self, tenant: Tenant, charge_id: str, *, amount: int, currency: str) -> Answer:
        """What the processor did with the authorization of `charge_id`: the same answers as
        `authorize`, with the same check of its amount and currency."""
        ...

    async def respond_to_dispute(
        self, tenant: Tenant, reference: str, *, key: str, evidence: Mapping[str, str], submit: bool
    ) -> DisputeState:
        """Send the merchant's evidence (and submit it for review, if `submit`); the dispute as it is then."""
        ...

    async def accept_dispute(self, tenant: Tenant, reference: str, *, key: str) -> DisputeState:
        """The merchant accepts the dispute: lost."""
        ...

    def handle_notification(self, body: bytes, headers: Mapping[str, str], *, now: int) -> Notification:
        """The notification in `body`, once its signature (in `headers`) is verified
        (`AuthenticationFailed` otherwise); one Bastion cannot read is `InvalidRequest`."""
        ...


_Model = TypeVar("_Model", bound=BaseModel)


def readable(model: type[_Model], body: bytes, prefix: str) -> _Model:
    """A notification's `body` (JSON) read as `model`, or `InvalidRequest` naming the first field
    that is not, after `prefix` (where in the notification `body` is)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        location = prefix + ".".join(str(part) for part in error.errors()[0]["loc"])
        raise InvalidRequest(f"The notification is not one Bastion can read ({location}).", param=location) from None
