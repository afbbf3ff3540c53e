"""A local Adyen: the Checkout API v71 (payments, captures, cancels, refunds) and Adyen's standard
notifications, for tests with no network.

Every request is checked against Adyen's own published description (`adyen/CheckoutService-v71.json`
of the vendor specs) and refused in Adyen's error format (`status`, `errorCode`, `message`,
`errorType`) when it does not fit; every answer and every notification is checked against it
too (`adyen/Webhooks-v1.json` for notifications, which are HMAC-signed as Adyen signs them).
It keeps its own record of payments: the judge of "no double charge". It decides by the sandbox
acquirer's test cards (docs/payments.md), and a test can make its next answer fail (chaos).
"""

import asyncio
import base64
import json
import secrets
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jsonschema_rs
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from tests.support.providers import vendor_specs

# The session's credentials, made when the tests start: no key is written in the repository.
API_KEY = f"AQE_{secrets.token_urlsafe(32)}"
MERCHANT_ACCOUNT = "BastionTestECOM"
HMAC_KEY = secrets.token_hex(32).upper()
_PSP_ALPHABET = string.ascii_uppercase + string.digits
# The sandbox acquirer's test cards (docs/payments.md), answered as Adyen refuses them:
# refusalReasonCode, refusalReason and the issuer's raw response where it tells more.
_REFUSED = {
    "4000000000000002": ("2", "Refused", None),
    "4000000000009995": ("12", "Not enough balance", "51 : Insufficient funds"),
    "4000000000009987": ("5", "Blocked Card", "41 : Lost card"),
    "4000000000000069": ("6", "Expired Card", None),
    "4000000000000127": ("24", "CVC Declined", None),
    "4000000000000119": ("4", "Acquirer Error", None),
}
_EXPIRED = ("6", "Expired Card", None)
_AUTHENTICATION_REQUIRED = ("38", "Authentication required", None)
_CHALLENGED = frozenset({"4000002760003184", "4000000000003220"})
# Where the chaos control hands a request's made-up resultCode to its handler.
_RESULT_CODE = "local_adyen.result_code"


@cache
def _document(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((vendor_specs() / "adyen" / name).read_text())
    return document


@cache
def _validator(document: str, schema: str) -> jsonschema_rs.Validator:
    """A validator of `#/components/schemas/<schema>` of an OpenAPI 3.1 document (its schemas
    are JSON Schema 2020-12, their references local)."""
    components = {"schemas": _document(document)["components"]["schemas"]}
    return jsonschema_rs.validator_for(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$ref": f"#/components/schemas/{schema}",
            "components": components,
        }
    )


def checkout_problems(schema: str, instance: Any) -> list[str]:
    """What is wrong with `instance` as Checkout's `schema`; empty when it fits."""
    validator = _validator("CheckoutService-v71.json", schema)
    return [
        f"{'/'.join(map(str, error.instance_path)) or '(root)'}: {error.message}" for error in validator.iter_errors(instance)
    ]


def notification_problems(document: dict[str, Any]) -> list[str]:
    """What is wrong with a NotificationRequest, checked against the schema Adyen publishes for
    its event (`webhooks["/<eventCode>"]`)."""
    event_code = document["notificationItems"][0]["NotificationRequestItem"]["eventCode"]
    webhook = _document("Webhooks-v1.json")["webhooks"][f"/{event_code}"]
    reference = webhook["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    validator = _validator("Webhooks-v1.json", reference.rsplit("/", 1)[1])
    return [f"{'/'.join(map(str, error.instance_path))}: {error.message}" for error in validator.iter_errors(document)]


def signature(item: dict[str, Any], hmac_key: str) -> str:
    """Adyen's HMAC of a notification item: base64 of HMAC-SHA256, keyed with the hex key, over
    pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success."""
    signed = [
        item["pspReference"],
        item.get("originalReference", ""),
        item["merchantAccountCode"],
        item["merchantReference"],
        str(item["amount"]["value"]),
        item["amount"]["currency"],
        item["eventCode"],
        item["success"],
    ]
    mac = HMAC(bytes.fromhex(hmac_key), SHA256())
    mac.update(":".join(signed).encode())
    digest = mac.finalize()
    return base64.b64encode(digest).decode()


def psp_reference() -> str:
    """A new 16-character reference, in Adyen's alphanumeric form."""
    return "".join(secrets.choice(_PSP_ALPHABET) for _ in range(16))


@dataclass
class Payment:
    psp_reference: str
    reference: str
    value: int
    currency: str
    manual_capture: bool
    card_last4: str
    result_code: str
    captured: int = 0
    refunded: int = 0
    cancelled: bool = False


@dataclass
class Chaos:
    """What the next request gets instead of its answer, once."""

    status: int | None = None  # answered with this status (Adyen's error body), not processed
    delay_s: float = 0.0  # processed, then answered this much later
    result_code: str | None = None  # processed, then answered with this resultCode
    drop: bool = False  # processed, then the connection dropped mid-answer


class _Dropped(Exception):
    """Raised after an answer started: uvicorn closes the connection with the answer unfinished."""


@dataclass
class LocalAdyen:
    base_url: str
    payments: dict[str, Payment] = field(default_factory=dict)
    # Every notification Adyen would have sent, in order (signed NotificationRequest documents).
    notifications: list[dict[str, Any]] = field(default_factory=list)
    # Every request body as it arrived, card numbers included: what reached the processor.
    received: list[bytes] = field(default_factory=list)
    chaos: Chaos = field(default_factory=Chaos)
    _idempotent: dict[str, tuple[bytes, int, dict[str, Any]]] = field(default_factory=dict)

    def payments_for(self, reference: str) -> list[Payment]:
        """The payments made for Bastion's `reference`: more than one is a double charge."""
        return [payment for payment in self.payments.values() if payment.reference == reference]

    def notifications_for(self, reference: str) -> list[dict[str, Any]]:
        return [
            document
            for document in self.notifications
            if document["notificationItems"][0]["NotificationRequestItem"]["merchantReference"] == reference
        ]

    @property
    def app(self) -> Any:
        routes = [
            Route("/v71/payments", self._payments, methods=["POST"]),
            Route("/v71/payments/{psp}/captures", self._captures, methods=["POST"]),
            Route("/v71/payments/{psp}/cancels", self._cancels, methods=["POST"]),
            Route("/v71/payments/{psp}/refunds", self._refunds, methods=["POST"]),
            Route("/threeDS/redirect", self._challenge_page, methods=["GET"]),
        ]
        return self._chaotic(Starlette(routes=routes))

    # Notifications, as Adyen builds and signs them.

    def notification(
        self,
        event_code: str,
        *,
        psp: str,
        merchant_reference: str,
        value: int,
        currency: str,
        success: bool = True,
        original_reference: str | None = None,
        reason: str | None = None,
        additional_data: dict[str, Any] | None = None,
        hmac_key: str = HMAC_KEY,
        event_date: datetime | None = None,
    ) -> dict[str, Any]:
        """A signed NotificationRequest of one item, checked against Adyen's schema for its event."""
        item: dict[str, Any] = {
            "pspReference": psp,
            "merchantAccountCode": MERCHANT_ACCOUNT,
            "merchantReference": merchant_reference,
            "eventCode": event_code,
            "eventDate": (event_date or datetime.now(UTC)).isoformat(timespec="seconds"),
            "amount": {"value": value, "currency": currency},
            "success": "true" if success else "false",
            "paymentMethod": "visa",
        }
        if original_reference is not None:
            item["originalReference"] = original_reference
        if reason is not None:
            item["reason"] = reason
        item["additionalData"] = {**(additional_data or {}), "hmacSignature": signature(item, hmac_key)}
        document = {"live": "false", "notificationItems": [{"NotificationRequestItem": item}]}
        problems = notification_problems(document)
        assert not problems, problems
        return document

    def authorisation(self, payment: Payment, *, success: bool, reason: str | None = None) -> dict[str, Any]:
        mode = "manual" if payment.manual_capture else "automatic"
        return self.notification(
            "AUTHORISATION",
            psp=payment.psp_reference,
            merchant_reference=payment.reference,
            value=payment.value,
            currency=payment.currency,
            success=success,
            reason=reason,
            additional_data={"metadata": {"bastionCapture": mode}},
        )

    def complete_challenge(self, psp: str, *, authenticated: bool) -> dict[str, Any]:
        """The cardholder answers the challenge: the payment is authorised or refused, and
        Adyen's AUTHORISATION notification of it is sent (and returned)."""
        payment = self.payments[psp]
        payment.result_code = "Authorised" if authenticated else "Refused"
        if authenticated and not payment.manual_capture:
            payment.captured = payment.value
        document = self.authorisation(payment, success=authenticated, reason=None if authenticated else "3D Not Authenticated")
        self.notifications.append(document)
        return document

    # Checkout.

    async def _payments(self, request: Request) -> Response:
        body = await request.body()
        self.received.append(body)
        return self._once(request, body, "PaymentRequest", self._pay)

    def _pay(self, request: dict[str, Any], _: str | None) -> tuple[int, dict[str, Any]]:
        card = request["paymentMethod"]
        number = str(card.get("number", ""))
        amount = request["amount"]
        manual = request.get("additionalData", {}).get("manualCapture") == "true" or request.get("captureDelayHours", 0) > 0
        payment = Payment(
            psp_reference(), request["reference"], amount["value"], amount["currency"], manual, number[-4:], "Authorised"
        )
        self.payments[payment.psp_reference] = payment
        answer: dict[str, Any] = {"pspReference": payment.psp_reference, "merchantReference": payment.reference, "amount": amount}
        refusal = _refusal(number, card, request)
        if refusal is not None:
            code, reason, raw = refusal
            payment.result_code = "Refused"
            answer |= {"resultCode": "Refused", "refusalReasonCode": code, "refusalReason": reason}
            if raw is not None:
                answer["additionalData"] = {"refusalReasonRaw": raw}
            self.notifications.append(self.authorisation(payment, success=False, reason=reason))
        elif number in _CHALLENGED or request.get("authenticationData", {}).get("attemptAuthentication") == "always":
            payment.result_code = "RedirectShopper"
            url = f"{self.base_url}/threeDS/redirect?psp={payment.psp_reference}"
            action = {"paymentMethodType": "scheme", "type": "redirect", "method": "GET", "url": url}
            answer |= {"resultCode": "RedirectShopper", "action": action}
        else:
            if not manual:
                payment.captured = payment.value
            answer["resultCode"] = "Authorised"
            self.notifications.append(self.authorisation(payment, success=True))
        return 200, answer

    async def _captures(self, request: Request) -> Response:
        return self._once(request, await request.body(), "PaymentCaptureRequest", self._capture)

    async def _cancels(self, request: Request) -> Response:
        return self._once(request, await request.body(), "PaymentCancelRequest", self._cancel)

    async def _refunds(self, request: Request) -> Response:
        return self._once(request, await request.body(), "PaymentRefundRequest", self._refund)

    def _capture(self, request: dict[str, Any], psp: str | None) -> tuple[int, dict[str, Any]]:
        payment = self.payments[str(psp)]
        value = request["amount"]["value"]
        # Adyen accepts the request and tells its outcome by notification.
        succeeded = payment.result_code == "Authorised" and not payment.cancelled and payment.captured + value <= payment.value
        if succeeded:
            payment.captured += value
        return self._received(request, payment, "CAPTURE", "PaymentCaptureResponse", succeeded=succeeded)

    def _cancel(self, request: dict[str, Any], psp: str | None) -> tuple[int, dict[str, Any]]:
        payment = self.payments[str(psp)]
        succeeded = payment.result_code in ("Authorised", "RedirectShopper") and payment.captured == 0 and not payment.cancelled
        payment.cancelled = payment.cancelled or succeeded
        return self._received(request, payment, "CANCELLATION", "PaymentCancelResponse", succeeded=succeeded)

    def _refund(self, request: dict[str, Any], psp: str | None) -> tuple[int, dict[str, Any]]:
        payment = self.payments[str(psp)]
        value = request["amount"]["value"]
        succeeded = payment.refunded + value <= payment.captured
        if succeeded:
            payment.refunded += value
        return self._received(request, payment, "REFUND", "PaymentRefundResponse", succeeded=succeeded)

    def _received(
        self, request: dict[str, Any], payment: Payment, event_code: str, schema: str, *, succeeded: bool
    ) -> tuple[int, dict[str, Any]]:
        modification = psp_reference()
        amount = request.get("amount", {"value": payment.value, "currency": payment.currency})
        self.notifications.append(
            self.notification(
                event_code,
                psp=modification,
                original_reference=payment.psp_reference,
                merchant_reference=request.get("reference", payment.reference),
                value=amount["value"],
                currency=amount["currency"],
                success=succeeded,
                reason=None if succeeded else "Insufficient balance on payment",
            )
        )
        answer = {
            "merchantAccount": request["merchantAccount"],
            "paymentPspReference": payment.psp_reference,
            "pspReference": modification,
            "status": "received",
            **({"reference": request["reference"]} if "reference" in request else {}),
            **({"amount": request["amount"]} if "amount" in request else {}),
        }
        problems = checkout_problems(schema, answer)
        assert not problems, problems
        return 201, answer

    async def _challenge_page(self, request: Request) -> Response:
        return HTMLResponse(f"<p>Local Adyen: 3-D Secure challenge of {request.query_params.get('psp', '')[:16]}</p>")

    # What every Checkout request goes through: authentication, Adyen's schema, idempotency.

    def _once(self, request: Request, body: bytes, schema: str, act: Any) -> Response:
        refusal = self._refusal(request, body, schema)
        if refusal is not None:
            return refusal
        document = json.loads(body)
        psp = request.path_params.get("psp")
        key = request.headers.get("idempotency-key")
        if key is not None and key in self._idempotent:
            first_body, status, answer = self._idempotent[key]
            if first_body != body:
                return _error(422, "704", "request already processed or in progress", "validation")
            return JSONResponse(answer, status_code=status, headers={"idempotency-key": key})
        status, answer = act(document, psp)
        if key is not None:
            self._idempotent[key] = (body, status, answer)
        result_code = request.scope.get(_RESULT_CODE)
        if schema == "PaymentRequest" and result_code is not None:
            answer = answer | {"resultCode": result_code}
        elif schema == "PaymentRequest":
            problems = checkout_problems("PaymentResponse", answer)
            assert not problems, problems
        return JSONResponse(answer, status_code=status, headers={"idempotency-key": key} if key else None)

    def _refusal(self, request: Request, body: bytes, schema: str) -> Response | None:
        """Adyen's answer to a request it does not process: unauthenticated, not of its schema,
        for another merchant account or an unknown payment."""
        if request.headers.get("x-api-key") != API_KEY:
            return _error(401, "000", "HTTP Status Response - Unauthorized", "security")
        try:
            document = json.loads(body)
        except ValueError:
            return _error(400, "702", "Unexpected input: the body is not JSON.", "validation")
        problems = checkout_problems(schema, document)
        if problems:
            return _error(400, "702", f"Structure of {schema} is invalid: {'; '.join(problems)[:1000]}", "validation")
        if document["merchantAccount"] != MERCHANT_ACCOUNT:
            return _error(403, "901", "Invalid Merchant Account", "security")
        psp = request.path_params.get("psp")
        if psp is not None and psp not in self.payments:
            return _error(422, "167", "Original pspReference required for this operation", "validation")
        return None

    def _chaotic(self, app: Any) -> Any:
        async def chaotic(scope: Scope, receive: Receive, send: Send) -> None:
            chaos, self.chaos = self.chaos, Chaos()
            if chaos.status is not None:
                await _error(chaos.status, "000", "An unexpected error occurred.", "internal")(scope, receive, send)
                return
            held: list[Message] = []

            async def hold(message: Message) -> None:
                held.append(message)

            await app({**scope, _RESULT_CODE: chaos.result_code}, receive, hold)
            if chaos.drop:
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
                raise _Dropped
            await asyncio.sleep(chaos.delay_s)
            for message in held:
                await send(message)

        return chaotic


def _refusal(number: str, card: dict[str, Any], request: dict[str, Any]) -> tuple[str, str, str | None] | None:
    if number in _REFUSED:
        return _REFUSED[number]
    today = datetime.now(UTC)
    if (int(card["expiryYear"]), int(card["expiryMonth"])) < (today.year, today.month):
        return _EXPIRED
    if number in _CHALLENGED and request.get("authenticationData", {}).get("attemptAuthentication") == "never":
        return _AUTHENTICATION_REQUIRED
    return None


def _error(status: int, code: str, message: str, error_type: str) -> JSONResponse:
    answer = {"status": status, "errorCode": code, "message": message, "errorType": error_type}
    problems = checkout_problems("ServiceError", answer)
    assert not problems, problems
    return JSONResponse(answer, status_code=status)


def body_of(document: dict[str, Any]) -> bytes:
    """A notification's body as Adyen posts it."""
    return json.dumps(document).encode()
