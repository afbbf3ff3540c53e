"""The connector of the sandbox acquirer (`bastion acquirer`, docs/payments.md): the
authorization goes through the vault's forward, which fills the card into the request; the
flows that carry no card data (capture, void, sync) go straight to the acquirer; its
notifications arrive signed (`Acquirer-Signature`)."""

import functools
from collections.abc import Mapping
from datetime import date
from typing import Any, Literal
from urllib.parse import urlencode

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.connectors import KINDS
from bastion.kernel.errors import InvalidRequest, ProcessorUnavailable
from bastion.payments.connectors import (
    Answer,
    AttemptResult,
    Authorization,
    DisputeState,
    Notification,
    SettlementLine,
    SettlementState,
    Subject,
    readable,
)
from bastion.payments.errors import DisputeRefused
from bastion.platform.db import Tenant
from bastion.platform.settings import SANDBOX_CONNECTOR
from bastion.platform.signatures import verify
from bastion.platform.vault_client import VaultClient

SIGNATURE_HEADER = "Acquirer-Signature"
# Lines of one settlement at most (the acquirer's own bound).
SETTLEMENT_LINES_MAX = 1_000
_RESULTS = {
    "requires_action": AttemptResult.REQUIRES_ACTION,
    "authorized": AttemptResult.AUTHORIZED,
    "captured": AttemptResult.CAPTURED,
    "voided": AttemptResult.VOIDED,
    "declined": AttemptResult.DECLINED,
}
# What the vault returns of the acquirer's answer: never its whole body.
_ANSWER_FIELDS = {
    "id": "/id",
    "status": "/status",
    "amount": "/amount",
    "currency": "/currency",
    "decline_code": "/decline_code",
    "decline_message": "/decline_message",
    "next_action_url": "/next_action_url",
}
_CARD = {"number": "{{card.number}}", "exp_month": "{{card.exp_month}}", "exp_year": "{{card.exp_year}}"}
_SERVER_ERROR = 500


class SandboxConnector:
    name = SANDBOX_CONNECTOR
    capabilities = KINDS[SANDBOX_CONNECTOR].capabilities

    def __init__(self, vault: VaultClient, client: httpx.AsyncClient, api_key: str, notification_secret: bytes) -> None:
        self._vault = vault
        self._client = client
        self._api_key = api_key
        self._notification_secret = notification_secret

    def _headers(self, key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self._api_key}", "content-type": "application/json", "idempotency-key": key}

    async def authorize(self, tenant: Tenant, request: Authorization) -> Answer:
        body = {
            "merchant": tenant.merchant_id,
            "reference": request.charge_id,
            "amount": request.amount,
            "currency": request.currency,
            "capture": request.capture,
            "card": _CARD,
            "return_url": request.return_url,
            "three_d_secure": "required" if request.three_d_secure_required else "automatic",
        }
        template = {
            "method": "POST",
            "path": "/v1/payments",
            "headers": self._headers(request.charge_id),
            "body": orjson.dumps(body).decode(),
        }
        try:
            forwarded = await self._vault.forward(
                tenant, card=request.card, connector=self.name, request=template, answer=_ANSWER_FIELDS
            )
        except InvalidRequest as refusal:
            # The vault would not send it (the card is gone, say): nothing reached the acquirer.
            return Answer(AttemptResult.FAILED, message=refusal.message)
        return read_answer(forwarded["status"], forwarded["fields"], amount=request.amount, currency=request.currency)

    async def capture(self, tenant: Tenant, charge_id: str, reference: str, amount: int) -> Answer:
        status, fields = await self._call("POST", f"/v1/payments/{reference}/capture", f"{charge_id}:capture", {"amount": amount})
        return read_answer(status, fields, amount=None, currency=None)

    async def void(self, tenant: Tenant, charge_id: str, reference: str) -> Answer:
        status, fields = await self._call("POST", f"/v1/payments/{reference}/void", f"{charge_id}:void", {})
        return read_answer(status, fields, amount=None, currency=None)

    async def refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        body = {"reference": refund_id, "amount": amount}
        status, fields = await self._call("POST", f"/v1/payments/{reference}/refunds", refund_id, body)
        if (
            status == httpx.codes.OK
            and fields is not None
            and fields.get("status") == "succeeded"
            and fields.get("amount") == amount
        ):
            return Answer(AttemptResult.REFUNDED, reference=fields.get("id"))
        return read_answer(status, fields, amount=None, currency=None)

    async def sync_refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        # The acquirer has no look-up of refunds; it keeps one refund per reference, so a
        # refund asked again with its id answers what the first did.
        return Answer(AttemptResult.UNKNOWN, message="The sandbox acquirer has no look-up of refunds.")

    async def sync(self, tenant: Tenant, charge_id: str, *, amount: int, currency: str) -> Answer:
        query = f"/v1/payments?{urlencode({'merchant': tenant.merchant_id, 'reference': charge_id})}"
        status, fields = await self._call("GET", query, None, None)
        if status == httpx.codes.NOT_FOUND:
            # It never received the authorization: nothing to settle there.
            return Answer(AttemptResult.FAILED, message="The acquirer has no record of this attempt.")
        if status != httpx.codes.OK:
            # Any other refusal says nothing of the attempt: asked again next round.
            raise ProcessorUnavailable(f"The sandbox acquirer answered the sync with {status}.")
        return read_answer(status, fields, amount=amount, currency=currency)

    async def respond_to_dispute(
        self, tenant: Tenant, reference: str, *, key: str, evidence: Mapping[str, str], submit: bool
    ) -> DisputeState:
        body = {"evidence": dict(evidence), "submit": submit}
        status, fields = await self._call("POST", f"/v1/disputes/{reference}/evidence", key, body)
        return _dispute_answer(status, fields)

    async def accept_dispute(self, tenant: Tenant, reference: str, *, key: str) -> DisputeState:
        status, fields = await self._call("POST", f"/v1/disputes/{reference}/accept", key, {})
        return _dispute_answer(status, fields)

    def handle_notification(self, body: bytes, headers: Mapping[str, str], *, now: int) -> Notification:
        verify(self._notification_secret, body, headers.get(SIGNATURE_HEADER), now=now)
        envelope = readable(_Envelope, body, "")
        # The sandbox acquirer takes test-mode payments only.
        told = functools.partial(Notification, id=envelope.id, type=envelope.type, merchant_id=envelope.merchant, livemode=False)
        data = orjson.dumps(envelope.data)
        if envelope.type == "settlement.paid":
            settlement = readable(_Settlement, data, "data.")
            return told(
                subject=Subject.SETTLEMENT,
                reference=settlement.id,
                answer=None,
                amount=settlement.net,
                currency=settlement.currency,
                settlement=settlement.state(),
            )
        if envelope.type.startswith("dispute."):
            disputed = readable(_Dispute, data, "data.")
            return told(
                subject=Subject.DISPUTE,
                reference=disputed.reference,
                answer=None,
                amount=disputed.amount,
                currency=disputed.currency,
                dispute=disputed.state(),
            )
        changed = readable(_Object, data, "data.")
        return told(
            subject=Subject.PAYMENT if envelope.type.startswith("payment.") else Subject.REFUND,
            reference=changed.reference,
            answer=read_answer(httpx.codes.OK, changed.model_dump(), amount=None, currency=None),
            amount=changed.amount,
            currency=changed.currency,
        )

    async def _call(
        self, method: str, path: str, key: str | None, body: dict[str, Any] | None
    ) -> tuple[int, dict[str, Any] | None]:
        """The acquirer's status and JSON answer (None when it is not JSON)."""
        headers = self._headers(key) if key is not None else {"authorization": f"Bearer {self._api_key}"}
        try:
            answer = await self._client.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as error:
            raise ProcessorUnavailable(f"The sandbox acquirer could not be reached ({type(error).__name__}).") from None
        try:
            fields = answer.json()
        except ValueError:
            fields = None
        return answer.status_code, fields if isinstance(fields, dict) else None


def read_answer(status: int, fields: dict[str, Any] | None, *, amount: int | None, currency: str | None) -> Answer:
    """The acquirer's answer in Bastion's terms. A server error is no answer (the flow is tried
    again); anything unrecognized, or an amount or currency other than asked, is `unknown`."""
    if status >= _SERVER_ERROR:
        raise ProcessorUnavailable(f"The sandbox acquirer failed ({status}).")
    fields = fields or {}
    if status != httpx.codes.OK:
        error = fields.get("error") or {}
        return Answer(AttemptResult.FAILED, message=str(error.get("message", f"The acquirer refused the request ({status}).")))
    result = _RESULTS.get(str(fields.get("status")), AttemptResult.UNKNOWN)
    if (amount is not None and fields.get("amount") != amount) or (currency is not None and fields.get("currency") != currency):
        return Answer(
            AttemptResult.UNKNOWN, reference=fields.get("id"), message="The acquirer answered another amount or currency."
        )
    redirect_url = fields.get("next_action_url")
    if result == AttemptResult.REQUIRES_ACTION and not isinstance(redirect_url, str):
        return Answer(
            AttemptResult.UNKNOWN, reference=fields.get("id"), message="The acquirer asked for a challenge with no page."
        )
    return Answer(
        result,
        reference=fields.get("id"),
        decline_code=fields.get("decline_code"),
        message=fields.get("decline_message"),
        redirect_url=redirect_url if result == AttemptResult.REQUIRES_ACTION else None,
    )


_ID = Field(min_length=1, max_length=64)


class _Object(BaseModel):
    """The acquirer's payment or refund, as far as Bastion reads it."""

    model_config = ConfigDict(extra="ignore")

    id: str = _ID
    reference: str = _ID
    status: str = Field(max_length=32)
    amount: int
    currency: str | None = Field(default=None, max_length=3)
    decline_code: str | None = Field(default=None, max_length=64)
    decline_message: str | None = Field(default=None, max_length=500)
    next_action_url: str | None = Field(default=None, max_length=2_048)


class _Dispute(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = _ID
    reference: str = _ID
    status: Literal["needs_response", "under_review", "won", "lost"]
    amount: int = Field(ge=1)
    currency: str = Field(max_length=3)
    reason: str = Field(max_length=64)
    evidence_due_by: int

    def state(self) -> DisputeState:
        return DisputeState(self.id, self.status, self.amount, self.currency, self.reason, self.evidence_due_by)


class _SettlementLine(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["capture", "refund", "dispute"]
    reference: str = _ID
    id: str = _ID
    amount: int = Field(ge=1)


class _Settlement(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = _ID
    currency: str = Field(max_length=3)
    settled_on: date
    net: int
    lines: list[_SettlementLine] = Field(min_length=1, max_length=SETTLEMENT_LINES_MAX)

    def state(self) -> SettlementState:
        lines = tuple(SettlementLine(line.type, line.reference, line.id, line.amount) for line in self.lines)
        return SettlementState(self.id, self.currency, self.settled_on.isoformat(), self.net, lines)


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = _ID
    object: Literal["notification"]
    type: Literal[
        "payment.authorized",
        "payment.captured",
        "payment.declined",
        "payment.voided",
        "refund.succeeded",
        "dispute.created",
        "dispute.updated",
        "dispute.closed",
        "settlement.paid",
    ]
    merchant: str = _ID
    data: dict[str, Any]


def _dispute_answer(status: int, fields: dict[str, Any] | None) -> DisputeState:
    """The acquirer's answer about a dispute; a refusal is the merchant's to see."""
    if status >= _SERVER_ERROR:
        raise ProcessorUnavailable(f"The sandbox acquirer failed ({status}).")
    if status != httpx.codes.OK or fields is None:
        error = (fields or {}).get("error") or {}
        raise DisputeRefused(str(error.get("message", f"The acquirer refused the request ({status}).")))
    try:
        return _Dispute.model_validate(fields).state()
    except ValidationError:
        raise ProcessorUnavailable("The sandbox acquirer's answer about the dispute is not one Bastion can read.") from None
