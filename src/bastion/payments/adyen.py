"""The Adyen connector: Checkout API v71 for payments and their modifications, Adyen's standard
notifications (HMAC-signed items) for what happens after (docs/connectors.md, Adyen; ADR 29).

The authorization carries card data, so it is built here from Adyen's published description of
`POST /payments` and sent through the vault's forward, which fills the card in; captures,
cancels and refunds carry none and go through the official `Adyen` package's Checkout service.
Notifications are verified with the package's own HMAC validator.

Adyen answers a modification with `received` and tells its outcome later, by notification;
Bastion takes `received` as done (the request was accepted, with Bastion's idempotency key), and
a notification that it failed after all is told as a failed answer and logged as an alert.
Checkout has no look-up of a payment: what became of an authorization whose answer was lost is
told by its AUTHORISATION notification, which Adyen always sends.
"""

import asyncio
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson
from Adyen import AdyenClient
from Adyen.exceptions import AdyenAPIResponseError
from Adyen.services.checkout import ModificationsApi
from Adyen.util import is_valid_hmac_notification
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bastion.connectors import KINDS, OpenedAccount
from bastion.kernel.errors import (
    AuthenticationFailed,
    ConfigurationError,
    InvalidRequest,
    ProcessorUnavailable,
    ProcessorUnreachable,
)
from bastion.kernel.money import exponent
from bastion.payments.connectors import (
    Answer,
    AttemptResult,
    Authorization,
    DisputeState,
    Notification,
    Subject,
)
from bastion.payments.domain import DisputeStatus
from bastion.payments.errors import DisputeRefused
from bastion.platform.db import Tenant
from bastion.platform.logging import get_logger
from bastion.platform.vault_client import VaultClient

ADYEN: Final = "adyen"
API_VERSION: Final = "v71"
# Connect and each read of a call to Adyen's Checkout API, in seconds.
ADYEN_TIMEOUT_S: Final = 10.0
# Adyen's test endpoints carry the API version at the root; its live ones under /checkout
# (https://{prefix}-checkout-live.adyenpayments.com/checkout/v71).
_PATHS: Final = {False: f"/{API_VERSION}", True: f"/checkout/{API_VERSION}"}
# Where Adyen sends the cardholder back when Bastion was given no return URL. Adyen requires
# one; such an authorization asks Adyen not to run 3-D Secure (no redirect), so it is never
# used. `.invalid` is reserved (RFC 2606): it names no site.
NO_RETURN_URL: Final = "https://no-return-url.invalid/"
# Metadata on the payment that Adyen hands back in its AUTHORISATION notification: whether the
# authorization is captured at once, which the notification does not otherwise tell.
CAPTURE_METADATA: Final = "bastionCapture"
# Bastion takes one notification item per request, as Adyen sends them.
NOTIFICATION_ITEMS_MAX: Final = 1
# What the vault returns of Adyen's answer to POST /payments (or of its error): never the whole body.
_ANSWER_FIELDS: Final = {
    "result_code": "/resultCode",
    "psp_reference": "/pspReference",
    "value": "/amount/value",
    "currency": "/amount/currency",
    "refusal_reason": "/refusalReason",
    "refusal_reason_code": "/refusalReasonCode",
    "refusal_reason_raw": "/additionalData/refusalReasonRaw",
    "action_url": "/action/url",
    "action_method": "/action/method",
    "error_code": "/errorCode",
    "message": "/message",
}
_CARD: Final = {
    "type": "scheme",
    "number": "{{card.number}}",
    "expiryMonth": "{{card.exp_month}}",
    "expiryYear": "{{card.exp_year}}",
}
# Adyen's 16-character reference of a payment or modification. A numeric one that happens to be
# Luhn-valid comes back from the vault masked as a card number would be: not one to act on.
_PSP_REFERENCE = re.compile(r"[A-Za-z0-9]{16}")
# The minor units Adyen counts in follow ISO 4217, except for these (Adyen's currency codes page).
_ADYEN_EXPONENTS: Final = {"CLP": 2, "CVE": 0, "IDR": 0, "ISK": 2}
# Adyen's documented error codes that mean "a request with this idempotency key is already being
# processed or was processed with another body": the first may have charged.
_IDEMPOTENCY_ERRORS: Final = frozenset({"704"})
_CHALLENGES: Final = frozenset({"RedirectShopper", "ChallengeShopper", "IdentifyShopper"})
_OK = 200
_CREATED = 201
_SERVER_ERROR = 500
# Adyen documents a 500 as "the server could not process the request"; a 503 is refused before
# processing. Other 5xx (a gateway's 502 or 504) may come after Adyen acted.
_NOT_PROCESSED = frozenset({500, 503})

_log = get_logger("bastion.payments")


@dataclass(frozen=True, slots=True)
class Refusal:
    """One of Adyen's refusal reasons and Bastion's decline code for it."""

    reason: str  # Adyen's refusalReason
    decline_code: str


# Adyen's refusal reasons by refusalReasonCode (docs.adyen.com, Refusal reasons), with the
# Stripe-style decline code Bastion answers. Any other code is `generic_decline`.
REFUSALS: Final[Mapping[str, Refusal]] = {
    "2": Refusal("Refused", "generic_decline"),
    "3": Refusal("Referral", "call_issuer"),
    "4": Refusal("Acquirer Error", "processing_error"),
    "5": Refusal("Blocked Card", "pickup_card"),
    "6": Refusal("Expired Card", "expired_card"),
    "7": Refusal("Invalid Amount", "invalid_amount"),
    "8": Refusal("Invalid Card Number", "incorrect_number"),
    "9": Refusal("Issuer Unavailable", "issuer_not_available"),
    "10": Refusal("Not supported", "card_not_supported"),
    "11": Refusal("3D Not Authenticated", "authentication_failed"),
    "12": Refusal("Not enough balance", "insufficient_funds"),
    "14": Refusal("Acquirer Fraud", "fraudulent"),
    "15": Refusal("Cancelled", "generic_decline"),
    "16": Refusal("Shopper Cancelled", "generic_decline"),
    "17": Refusal("Invalid Pin", "incorrect_pin"),
    "18": Refusal("Pin tries exceeded", "pin_try_exceeded"),
    "20": Refusal("FRAUD", "fraudulent"),
    "21": Refusal("Not Submitted", "processing_error"),
    "22": Refusal("FRAUD-CANCELLED", "fraudulent"),
    "23": Refusal("Transaction Not Permitted", "transaction_not_allowed"),
    "24": Refusal("CVC Declined", "incorrect_cvc"),
    "25": Refusal("Restricted Card", "restricted_card"),
    "26": Refusal("Revocation Of Auth", "revocation_of_authorization"),
    "27": Refusal("Declined Non Generic", "do_not_honor"),
    "28": Refusal("Withdrawal amount exceeded", "card_velocity_exceeded"),
    "29": Refusal("Withdrawal count exceeded", "withdrawal_count_limit_exceeded"),
    "31": Refusal("Issuer Suspected Fraud", "fraudulent"),
    "32": Refusal("AVS Declined", "incorrect_zip"),
    "33": Refusal("Card requires online pin", "online_or_offline_pin_required"),
    "34": Refusal("No checking account available on Card", "invalid_account"),
    "35": Refusal("No savings account available on Card", "invalid_account"),
    "36": Refusal("Mobile pin required", "online_or_offline_pin_required"),
    "38": Refusal("Authentication required", "authentication_required"),
    "42": Refusal("3DS Authentication Error", "authentication_failed"),
    "44": Refusal("Transaction blocked by Adyen to prevent excessive retry fees", "do_not_try_again"),
}
_REFUSALS_BY_REASON: Final = {refusal.reason.lower(): refusal for refusal in REFUSALS.values()}
# Adyen maps lost, stolen and "pick up" cards to one reason (Blocked Card); the issuer's own ISO
# 8583 response code, in `refusalReasonRaw` where the merchant has raw responses enabled, tells them apart.
_BLOCKED_CARD_RAW: Final = {"41": "lost_card", "43": "stolen_card"}
_RAW_CODE = re.compile(r"\s*([0-9A-Z]{2})\b")
# Declines that say nothing of the card or the cardholder (an error at Adyen's acquirer, the
# issuer out of reach): nothing was authorized, and another processor may well succeed.
SOFT_DECLINES: Final = frozenset({"processing_error", "issuer_not_available", "try_again_later"})


class AdyenConnector:
    name = ADYEN
    capabilities = KINDS[ADYEN].capabilities

    def __init__(self, account: OpenedAccount, vault: VaultClient, *, timeout_s: float = ADYEN_TIMEOUT_S) -> None:
        livemode = account.tenant.livemode
        base_url = account.base_url.rstrip("/") + _PATHS[livemode]
        # The package rewrites "-live" to "-test" in test mode, and the reverse in live mode
        # (`AdyenClient._determine_api_url`): a base URL holding the other word would be changed.
        if ("-test" if livemode else "-live") in base_url:
            raise ConfigurationError(f"An Adyen base URL in {'live' if livemode else 'test'} mode cannot contain that word.")
        self._vault = vault
        self._tenant = account.tenant
        self._path = _PATHS[livemode]
        self._api_key = account.credentials["api_key"]
        self._merchant_account = account.credentials["merchant_account"]
        self._hmac_key = account.credentials["hmac_key"]
        client = AdyenClient(
            xapikey=self._api_key,
            platform="live" if livemode else "test",
            live_endpoint_prefix=account.credentials.get("live_url_prefix"),
            application_name="bastion",
            # requests (which stripe and braintree bring) rather than whichever the package finds.
            http_force="requests",
            http_timeout=timeout_s,
        )
        self._modifications = ModificationsApi(client=client)
        # How the package lets a caller choose where it calls (its README, "Customizing Base URL").
        self._modifications.baseUrl = base_url

    async def authorize(self, tenant: Tenant, request: Authorization) -> Answer:
        value = adyen_value(request.amount, request.currency)
        if value is None:
            return Answer(
                AttemptResult.FAILED,
                decline_code="invalid_amount",
                message=f"Adyen counts {request.currency} in whole units; this amount has a fraction of one.",
            )
        template = {
            "method": "POST",
            "path": f"{self._path}/payments",
            "headers": self._headers(request.charge_id),
            "body": orjson.dumps(self._payment_request(request, value)).decode(),
        }
        try:
            forwarded = await self._vault.forward(
                tenant, card=request.card, connector=self.name, request=template, answer=_ANSWER_FIELDS
            )
        except ProcessorUnavailable as failure:
            if failure.code == ProcessorUnreachable.code:
                return Answer(AttemptResult.FAILED, failover=True, message="Adyen could not be reached; nothing was sent.")
            # The request may have arrived: the AUTHORISATION notification tells what Adyen did.
            return Answer(AttemptResult.UNKNOWN, message=f"Adyen's answer was lost ({failure.code}).")
        except InvalidRequest as refusal:
            # The vault would not send it (the card is gone, say): nothing reached Adyen.
            return Answer(AttemptResult.FAILED, message=refusal.message)
        return read_payment(
            forwarded["status"], forwarded["fields"], amount=request.amount, currency=request.currency, capture=request.capture
        )

    async def capture(self, tenant: Tenant, charge_id: str, reference: str, amount: int) -> Answer:
        operation = self._modifications.capture_authorised_payment
        return await self._move(
            operation, reference, amount, ours=charge_id, key=f"{charge_id}:capture", done=AttemptResult.CAPTURED
        )

    async def void(self, tenant: Tenant, charge_id: str, reference: str) -> Answer:
        psp_reference, _ = split_reference(reference)
        body = {"merchantAccount": self._merchant_account, "reference": charge_id}
        answer = await self._modify(
            self._modifications.cancel_authorised_payment_by_psp_reference, body, psp_reference, f"{charge_id}:void"
        )
        return read_modification(answer, AttemptResult.VOIDED, value=None, currency=None)

    async def refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        operation = self._modifications.refund_captured_payment
        return await self._move(operation, reference, amount, ours=refund_id, key=refund_id, done=AttemptResult.REFUNDED)

    async def sync(self, tenant: Tenant, charge_id: str, *, amount: int, currency: str) -> Answer:
        # Checkout has no look-up of a payment by reference: Adyen's AUTHORISATION notification,
        # which it sends for every payment and retries until it is accepted, settles the attempt.
        return Answer(AttemptResult.UNKNOWN, message="Adyen tells the outcome by its AUTHORISATION notification only.")

    async def sync_refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        # Likewise: the REFUND notification tells it.
        return Answer(AttemptResult.UNKNOWN, message="Adyen tells the outcome of a refund by its REFUND notification only.")

    async def respond_to_dispute(
        self, tenant: Tenant, reference: str, *, key: str, evidence: Mapping[str, str], submit: bool
    ) -> DisputeState:
        raise DisputeRefused(_DISPUTES_IN_CUSTOMER_AREA)

    async def accept_dispute(self, tenant: Tenant, reference: str, *, key: str) -> DisputeState:
        raise DisputeRefused(_DISPUTES_IN_CUSTOMER_AREA)

    def handle_notification(self, body: bytes, headers: Mapping[str, str], *, now: int) -> Notification:
        """The one item of Adyen's notification in `body`, once its HMAC signature (inside the
        item, `additionalData.hmacSignature`) is verified. Adyen signs no time: a replayed item
        verifies again, and is the same notification (its id is pspReference, eventCode and
        success), which Bastion takes once."""
        document, envelope = _readable_notification(body)
        raw_item = document["notificationItems"][0]["NotificationRequestItem"]
        if not _signed(raw_item, self._hmac_key):
            raise AuthenticationFailed("The Adyen notification's HMAC signature does not verify.")
        item = envelope.notificationItems[0].NotificationRequestItem
        if (envelope.live == "true") != self._tenant.livemode:
            raise InvalidRequest("The Adyen notification is of the other mode than this account.", param="live")
        if item.merchantAccountCode != self._merchant_account:
            raise InvalidRequest("The Adyen notification is of another merchant account.", param="merchantAccountCode")
        return self._notification(item)

    def _notification(self, item: "_Item") -> Notification:
        amount = bastion_amount(item.amount.value, item.amount.currency)
        if amount is None:
            raise InvalidRequest("The Adyen notification's amount has a fraction of a minor unit.", param="amount.value")
        told = functools.partial(
            Notification,
            id=f"{item.pspReference}:{item.eventCode}:{item.success}",
            type=item.eventCode,
            merchant_id=self._tenant.merchant_id,
            livemode=self._tenant.livemode,
            reference=item.merchantReference,
            amount=amount,
            currency=item.amount.currency,
        )
        if item.eventCode == "AUTHORISATION":
            return told(subject=Subject.PAYMENT, answer=_authorisation(item))
        if item.eventCode in _MODIFICATIONS:
            subject, done = _MODIFICATIONS[item.eventCode]
            return told(subject=subject, answer=_modification(item, done))
        status = dispute_status(item.eventCode, item.additionalData.get("disputeStatus"))
        if status is not None:
            return told(subject=Subject.DISPUTE, answer=None, dispute=self._dispute(item, amount, status))
        # Other events (reports, authorisation adjustments, expiries...) settle nothing Bastion waits for.
        return told(subject=Subject.PAYMENT, answer=None)

    def _dispute(self, item: "_Item", amount: int, status: DisputeStatus) -> DisputeState:
        due = item.additionalData.get("defensePeriodEndsAt")
        try:
            evidence_due_by = int(datetime.fromisoformat(due).timestamp()) if due else int(item.eventDate.timestamp())
        except ValueError:
            raise InvalidRequest(
                "The Adyen notification's defense period is not a date.", param="additionalData.defensePeriodEndsAt"
            ) from None
        reason = DISPUTE_REASONS.get(str(item.additionalData.get("chargebackReasonCode", "")).strip(), "general")
        return DisputeState(item.pspReference, status.value, amount, item.amount.currency, reason, evidence_due_by)

    def _headers(self, key: str) -> dict[str, str]:
        return {"x-api-key": self._api_key, "content-type": "application/json", "idempotency-key": key}

    def _payment_request(self, request: Authorization, value: int) -> dict[str, Any]:
        """Checkout's PaymentRequest for a card the vault fills in."""
        body: dict[str, Any] = {
            "merchantAccount": self._merchant_account,
            "reference": request.charge_id,
            "amount": {"value": value, "currency": request.currency},
            "paymentMethod": _CARD,
            "returnUrl": request.return_url or NO_RETURN_URL,
            "shopperInteraction": "Ecommerce",
            "channel": "Web",
            "metadata": {CAPTURE_METADATA: "automatic" if request.capture else "manual"},
            # A challenge is a page Bastion hands the cardholder's browser: a GET of one URL.
            "redirectToIssuerMethod": "GET",
            "redirectFromIssuerMethod": "GET",
            "authenticationData": _authentication(request),
        }
        if request.capture:
            body["captureDelayHours"] = 0
        else:
            body["additionalData"] = {"manualCapture": "true"}
        if request.three_d_secure_required:
            # Challenge requested (mandate): the risk engine asks for one whatever the issuer would do.
            body["threeDS2RequestData"] = {"threeDSRequestorChallengeInd": "04"}
        return body

    async def _move(
        self, operation: Callable[..., Any], reference: str, amount: int, *, ours: str, key: str, done: AttemptResult
    ) -> Answer:
        """A capture or refund of `amount` of the payment `reference`, with Bastion's id `ours` as its reference."""
        psp_reference, currency = split_reference(reference)
        value = adyen_value(amount, currency)
        if value is None:
            return Answer(
                AttemptResult.FAILED, message=f"Adyen counts {currency} in whole units; this amount has a fraction of one."
            )
        body = {"merchantAccount": self._merchant_account, "amount": {"value": value, "currency": currency}, "reference": ours}
        return read_modification(await self._modify(operation, body, psp_reference, key), done, value=value, currency=currency)

    async def _modify(
        self, operation: Callable[..., Any], body: dict[str, Any], psp_reference: str, key: str
    ) -> tuple[int, dict[str, Any]]:
        """Adyen's status and JSON answer to a modification; a connection error or a server
        error raises ProcessorUnavailable (the command asks again, with the same key)."""
        try:
            result = await asyncio.to_thread(operation, body, psp_reference, idempotency_key=key)
        except AdyenAPIResponseError as error:
            fields = _error_fields(error.raw_response)
            status = int(error.status_code)
            if status >= _SERVER_ERROR or fields.get("errorCode") in _IDEMPOTENCY_ERRORS:
                raise ProcessorUnavailable(
                    f"Adyen answered {status} ({fields.get('errorCode')}); it will be asked again."
                ) from None
            return status, fields
        except OSError as error:
            # requests' errors are OSErrors: no connection, a timeout, a dropped answer.
            raise ProcessorUnavailable(f"Adyen could not be reached ({type(error).__name__}).") from None
        message = result.message if isinstance(result.message, dict) else {}
        return int(result.status_code), message


_DISPUTES_IN_CUSTOMER_AREA = (
    "Adyen disputes are answered in Adyen's Customer Area (Disputes), not through Bastion: "
    "defend or accept the dispute there; Bastion follows it by Adyen's notifications."
)
_MODIFICATIONS: Final[Mapping[str, tuple[Subject, AttemptResult | None]]] = {
    "CAPTURE": (Subject.PAYMENT, AttemptResult.CAPTURED),
    "CANCELLATION": (Subject.PAYMENT, AttemptResult.VOIDED),
    "REFUND": (Subject.REFUND, AttemptResult.REFUNDED),
    # Always failures, whatever `success` says: a capture or refund that failed at the scheme
    # after Adyen accepted it, a refund that came back.
    "CAPTURE_FAILED": (Subject.PAYMENT, None),
    "REFUND_FAILED": (Subject.REFUND, None),
    "REFUNDED_REVERSED": (Subject.REFUND, None),
}
# Adyen's dispute events that close a dispute, whatever its `disputeStatus`.
_DISPUTE_CLOSED_BY_EVENT: Final = {
    "CHARGEBACK_REVERSED": DisputeStatus.WON,
    "PREARBITRATION_WON": DisputeStatus.WON,
    "SECOND_CHARGEBACK": DisputeStatus.LOST,
    "PREARBITRATION_LOST": DisputeStatus.LOST,
    "DISPUTE_DEFENSE_PERIOD_ENDED": DisputeStatus.LOST,
}
_DISPUTE_EVENTS: Final = frozenset(
    {"NOTIFICATION_OF_CHARGEBACK", "REQUEST_FOR_INFORMATION", "CHARGEBACK", "INFORMATION_SUPPLIED", "PREARBITRATION_OPEN"}
)
# Adyen's `disputeStatus` of an open dispute event, in Bastion's statuses.
_DISPUTE_STATUSES: Final = {
    "Responded": DisputeStatus.UNDER_REVIEW,
    "Pending": DisputeStatus.UNDER_REVIEW,
    "Won": DisputeStatus.WON,
    "Lost": DisputeStatus.LOST,
    "Accepted": DisputeStatus.LOST,
    "Expired": DisputeStatus.LOST,
}
# Scheme reason codes (Adyen's `chargebackReasonCode`) and Stripe-style dispute reasons; any other is `general`.
DISPUTE_REASONS: Final[Mapping[str, str]] = {
    **dict.fromkeys(("10.1", "10.2", "10.3", "10.4", "10.5"), "fraudulent"),  # Visa, fraud
    **dict.fromkeys(("4837", "4840", "4849", "4863", "4870", "4871"), "fraudulent"),  # Mastercard, fraud
    "12.6.1": "duplicate",
    "4834": "duplicate",
    "13.1": "product_not_received",
    "4855": "product_not_received",
    "13.2": "subscription_canceled",
    "4841": "subscription_canceled",
    "13.3": "product_unacceptable",
    "4853": "product_unacceptable",
    "13.6": "credit_not_processed",
    "4860": "credit_not_processed",
}


def dispute_status(event_code: str, adyen_status: str | None) -> DisputeStatus | None:
    """A dispute event's status in Bastion's terms; None for an event that is not about a dispute."""
    if event_code in _DISPUTE_CLOSED_BY_EVENT:
        return _DISPUTE_CLOSED_BY_EVENT[event_code]
    if event_code not in _DISPUTE_EVENTS:
        return None
    if event_code == "INFORMATION_SUPPLIED":
        return DisputeStatus.UNDER_REVIEW
    return _DISPUTE_STATUSES.get(adyen_status or "", DisputeStatus.NEEDS_RESPONSE)


def adyen_value(amount: int, currency: str) -> int | None:
    """`amount` (ISO 4217 minor units) in Adyen's minor units of `currency`; None when it has
    none exact (Adyen counts IDR and CVE in whole units, which ISO gives two decimals)."""
    return _rescaled(amount, exponent(currency), _ADYEN_EXPONENTS.get(currency, exponent(currency)))


def bastion_amount(value: int, currency: str) -> int | None:
    """Adyen's `value` of `currency` in ISO 4217 minor units; None when it has none exact."""
    return _rescaled(value, _ADYEN_EXPONENTS.get(currency, exponent(currency)), exponent(currency))


def _rescaled(amount: int, places: int, places_wanted: int) -> int | None:
    if places_wanted >= places:
        return amount * int(10 ** (places_wanted - places))
    whole, fraction = divmod(amount, int(10 ** (places - places_wanted)))
    return whole if fraction == 0 else None


def payment_reference(psp_reference: str, currency: str) -> str:
    """The charge's connector reference: Adyen's pspReference and the currency, which Adyen's
    captures and refunds need and Bastion's capture and refund flows do not pass."""
    return f"{psp_reference}:{currency}"


def split_reference(reference: str) -> tuple[str, str]:
    psp_reference, _, currency = reference.partition(":")
    if not _PSP_REFERENCE.fullmatch(psp_reference) or len(currency) != len("EUR"):
        raise InvalidRequest("Not an Adyen payment's reference.", param="reference")
    return psp_reference, currency


def decline_code(refusal_code: str | None, reason: str | None, raw_reason: str | None) -> str:
    """Bastion's decline code for an Adyen refusal: by its code, else by its reason's text (a
    notification has no code), refined by the issuer's raw response for a blocked card."""
    refusal = REFUSALS.get(refusal_code or "") or _REFUSALS_BY_REASON.get((reason or "").strip().lower())
    if refusal is None:
        return "generic_decline"
    if refusal.decline_code == "pickup_card" and raw_reason is not None:
        raw = _RAW_CODE.match(raw_reason)
        if raw is not None:
            return _BLOCKED_CARD_RAW.get(raw.group(1), refusal.decline_code)
    return refusal.decline_code


def _declined(refusal_code: str | None, reason: str | None, raw_reason: str | None, reference: str | None) -> Answer:
    code = decline_code(refusal_code, reason, raw_reason)
    return Answer(AttemptResult.DECLINED, reference, code, reason, failover=code in SOFT_DECLINES)


def _authorisation(item: "_Item") -> Answer:
    """What an AUTHORISATION notification says of the payment, as `authorize` would answer."""
    reference = payment_reference(item.pspReference, item.amount.currency)
    if item.success != "true":
        return _declined(None, item.reason, item.raw_reason(), reference)
    capture = item.capture_mode()
    if capture is None:
        # Not a payment Bastion made (each says how it is captured): nothing Bastion can settle.
        return Answer(AttemptResult.UNKNOWN, reference, message="The payment's metadata does not say how it is captured.")
    return Answer(AttemptResult.CAPTURED if capture == "automatic" else AttemptResult.AUTHORIZED, reference)


def _modification(item: "_Item", done: AttemptResult | None) -> Answer:
    """What a capture's, cancel's or refund's notification says. Bastion recorded the
    modification when Adyen answered `received`: a failure now is logged for operations to act
    on (ADR 29), and told as a failed answer, which changes nothing by itself."""
    if item.success == "true" and done is not None:
        return Answer(done, item.pspReference)
    _log.warning(
        "adyen_modification_failed",
        event_code=item.eventCode,
        psp_reference=item.pspReference,
        original_reference=item.originalReference,
        reference=item.merchantReference,
        reason=item.reason,
    )
    return Answer(AttemptResult.FAILED, item.pspReference, message=item.reason or f"Adyen: {item.eventCode}.")


def read_payment(status: int, fields: Mapping[str, Any] | None, *, amount: int, currency: str, capture: bool) -> Answer:
    """Adyen's answer to POST /payments in Bastion's terms (docs/connectors.md, the status table)."""
    fields = fields or {}
    if status != _OK:
        return _refused_request(status, fields)
    result_code = fields.get("result_code")
    psp_reference = fields.get("psp_reference")
    if not isinstance(psp_reference, str) or not _PSP_REFERENCE.fullmatch(psp_reference):
        return Answer(AttemptResult.UNKNOWN, message="Adyen's answer has no usable pspReference.")
    reference = payment_reference(psp_reference, currency)
    value = fields.get("value")
    told = fields.get("currency")
    # An amount Adyen states must be the one asked; an authorization must state it.
    stated = value is not None or told is not None
    if (stated or result_code == "Authorised") and (
        told != currency or not isinstance(value, int) or bastion_amount(value, currency) != amount
    ):
        return Answer(AttemptResult.UNKNOWN, reference, message="Adyen answered another amount or currency.")
    return _result(result_code, fields, reference, capture)


def _result(result_code: Any, fields: Mapping[str, Any], reference: str, capture: bool) -> Answer:
    if result_code == "Authorised":
        return Answer(AttemptResult.CAPTURED if capture else AttemptResult.AUTHORIZED, reference)
    if result_code == "Refused":
        return _declined(
            _text(fields.get("refusal_reason_code")),
            _text(fields.get("refusal_reason")),
            _text(fields.get("refusal_reason_raw")),
            reference,
        )
    if result_code in _CHALLENGES:
        return _challenge(fields, reference)
    if result_code == "Error":
        # Final, and nothing authorized: another processor may be tried.
        return Answer(AttemptResult.FAILED, reference, "processing_error", _text(fields.get("refusal_reason")), failover=True)
    if result_code == "Cancelled":
        return Answer(AttemptResult.VOIDED, reference, message=_text(fields.get("refusal_reason")))
    # Pending and Received are not final; the rest are not answers to a card payment.
    return Answer(AttemptResult.UNKNOWN, reference, message=f"Adyen's result {str(result_code)[:40]!r} is not final for Bastion.")


def _challenge(fields: Mapping[str, Any], reference: str) -> Answer:
    """3-D Secure: the page to send the cardholder to (a GET, as the request asked)."""
    url = fields.get("action_url")
    if not isinstance(url, str) or fields.get("action_method") not in (None, "GET"):
        return Answer(
            AttemptResult.UNKNOWN, reference, message="Adyen asked for a challenge with no page to send the cardholder to."
        )
    return Answer(AttemptResult.REQUIRES_ACTION, reference, redirect_url=url)


def _refused_request(status: int, fields: Mapping[str, Any]) -> Answer:
    """An error answer to POST /payments (Adyen's `status`, `errorCode`, `message`, `errorType`)."""
    message = f"Adyen refused the request ({status} {_text(fields.get('error_code'))}): {_text(fields.get('message'))}"
    if fields.get("error_code") in _IDEMPOTENCY_ERRORS:
        return Answer(AttemptResult.UNKNOWN, message=message)
    if status in _NOT_PROCESSED or status < _SERVER_ERROR:
        # Refused before processing (a 4xx: credentials, validation), or documented as not processed.
        return Answer(AttemptResult.FAILED, decline_code="processing_error", message=message, failover=True)
    return Answer(AttemptResult.UNKNOWN, message=message)


def read_modification(
    answer: tuple[int, Mapping[str, Any]], done: AttemptResult, *, value: int | None, currency: str | None
) -> Answer:
    """Adyen's answer to a capture, cancel or refund: `received` is the request accepted, so done
    for Bastion (its failure comes later, by notification); a refusal is failed."""
    status, fields = answer
    if status not in (_CREATED, _OK):
        return Answer(
            AttemptResult.FAILED,
            message=f"Adyen refused the request ({status} {_text(fields.get('errorCode'))}): {_text(fields.get('message'))}",
        )
    amount = fields.get("amount") or {}
    if fields.get("status") != "received" or (
        value is not None and (amount.get("value"), amount.get("currency")) != (value, currency)
    ):
        return Answer(AttemptResult.UNKNOWN, fields.get("pspReference"), message="Adyen's answer is not the request received.")
    return Answer(done, fields.get("pspReference"))


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:500]


def _error_fields(raw_response: Any) -> dict[str, Any]:
    try:
        fields = orjson.loads(raw_response)
    except (orjson.JSONDecodeError, TypeError):
        return {}
    return fields if isinstance(fields, dict) else {}


def _authentication(request: Authorization) -> dict[str, Any]:
    """3-D Secure by redirect (not Adyen's native component): `always` when the risk engine
    asks; never without a return URL, since the cardholder could not come back."""
    authentication: dict[str, Any] = {"threeDSRequestData": {"nativeThreeDS": "disabled"}}
    if request.three_d_secure_required:
        authentication["attemptAuthentication"] = "always"
    elif request.return_url is None:
        authentication["attemptAuthentication"] = "never"
    return authentication


def _signed(item: Any, hmac_key: str) -> bool:
    """Whether the package's validator accepts the item's signature; a missing or malformed one is not."""
    if not isinstance(item, dict) or not isinstance(item.get("additionalData"), dict):
        return False
    try:
        return bool(is_valid_hmac_notification(item, hmac_key))
    except (KeyError, ValueError, TypeError):
        return False


_REFERENCE = Field(min_length=1, max_length=80)


class _Amount(BaseModel):
    model_config = ConfigDict(extra="ignore")

    value: int = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3)


class _Item(BaseModel):
    """A NotificationRequestItem, as far as Bastion reads it."""

    model_config = ConfigDict(extra="ignore")

    pspReference: str = Field(min_length=1, max_length=64)  # noqa: N815  (Adyen's names)
    originalReference: str | None = Field(default=None, max_length=64)  # noqa: N815
    merchantAccountCode: str = _REFERENCE  # noqa: N815
    merchantReference: str = _REFERENCE  # noqa: N815
    eventCode: str = Field(min_length=1, max_length=64)  # noqa: N815
    eventDate: datetime  # noqa: N815
    success: str = Field(pattern="^(true|false)$")
    amount: _Amount
    reason: str | None = Field(default=None, max_length=1_000)
    additionalData: dict[str, Any] = Field(default_factory=dict)  # noqa: N815

    def raw_reason(self) -> str | None:
        raw = self.additionalData.get("refusalReasonRaw")
        return raw if isinstance(raw, str) else None

    def capture_mode(self) -> str | None:
        """Bastion's capture metadata, flat (`metadata.bastionCapture`, as Adyen's JSON
        notifications carry it) or nested (as its published schema describes it)."""
        flat = self.additionalData.get(f"metadata.{CAPTURE_METADATA}")
        nested = self.additionalData.get("metadata")
        mode = flat if flat is not None else (nested.get(CAPTURE_METADATA) if isinstance(nested, dict) else None)
        return mode if mode in ("automatic", "manual") else None


class _Wrapper(BaseModel):
    model_config = ConfigDict(extra="ignore")

    NotificationRequestItem: _Item


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")

    live: str = Field(pattern="^(true|false)$")
    notificationItems: list[_Wrapper] = Field(min_length=1, max_length=NOTIFICATION_ITEMS_MAX)  # noqa: N815


def _readable_notification(body: bytes) -> tuple[dict[str, Any], _Envelope]:
    """The notification's JSON and its reading, or `InvalidRequest` naming the first field that is not readable."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("The Adyen notification is not JSON.", param="body") from None
    try:
        return document, _Envelope.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        if location == "notificationItems" and first["type"] == "too_long":
            message = "Bastion takes one notification item per request, as Adyen sends them."
        else:
            message = f"The Adyen notification is not one Bastion can read ({location})."
        raise InvalidRequest(message, param=location) from None
