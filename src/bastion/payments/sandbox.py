"""The connector of the sandbox acquirer (`bastion acquirer`, docs/payments.md): the
authorization goes through the vault's forward, which fills the card into the request; the
flows that carry no card data (capture, void, sync) go straight to the acquirer."""

from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from bastion.kernel.errors import InvalidRequest, ProcessorUnavailable
from bastion.payments.connectors import Answer, AttemptResult, Authorization, Capabilities
from bastion.platform.db import Tenant
from bastion.platform.settings import SANDBOX_CONNECTOR
from bastion.platform.vault_client import VaultClient

_RESULTS = {
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
}
_CARD = {"number": "{{card.number}}", "exp_month": "{{card.exp_month}}", "exp_year": "{{card.exp_year}}"}
_SERVER_ERROR = 500


class SandboxConnector:
    name = SANDBOX_CONNECTOR
    capabilities = Capabilities(
        currencies=None,
        brands=frozenset({"visa", "mastercard", "amex", "discover", "jcb", "diners", "unionpay"}),
        manual_capture=True,
        partial_capture=True,
        partial_refunds=True,
        three_d_secure=False,
    )

    def __init__(self, vault: VaultClient, client: httpx.AsyncClient, api_key: str) -> None:
        self._vault = vault
        self._client = client
        self._api_key = api_key

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
    return Answer(
        result, reference=fields.get("id"), decline_code=fields.get("decline_code"), message=fields.get("decline_message")
    )
