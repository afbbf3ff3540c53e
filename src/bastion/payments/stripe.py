"""The Stripe connector (ADR 27): PaymentIntents, refunds and disputes through the `stripe`
package, its errors and its webhook verifier.

An authorization is two requests. The card becomes a PaymentMethod through the vault's forward
(`POST /v1/payment_methods`, built here from the package's typed parameters: the card fields are
placeholders the vault fills), then a PaymentIntent is created and confirmed with it, straight
from this process through the package, since it carries no card data. The package's typed
parameters have no card fields on a PaymentIntent, and a PaymentMethod alone charges nothing,
so anything that fails before the PaymentIntent leaves no payment at Stripe.

Bastion's ids are Stripe's idempotency keys and its references: the charge id in the
PaymentIntent's `metadata[bastion_charge]`, the refund id in the refund's
`metadata[bastion_refund]`, which sync and notifications read back.
"""

import asyncio
import functools
from collections.abc import Awaitable, Mapping
from datetime import timedelta
from typing import Any, Literal, NoReturn, TypeVar, cast

import httpx
import orjson
import stripe
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from stripe.params import (
    DisputeUpdateParams,
    DisputeUpdateParamsEvidence,
    PaymentIntentCreateParams,
    RefundCreateParams,
    RefundListParams,
)

from bastion.connectors import KINDS, OpenedAccount
from bastion.kernel.clock import SYSTEM_CLOCK, Clock
from bastion.kernel.errors import AuthenticationFailed, InvalidRequest, ProcessorUnavailable, invariant
from bastion.kernel.ids import created_at, is_id
from bastion.kernel.money import exponent
from bastion.payments.connectors import (
    Answer,
    AttemptResult,
    Authorization,
    DisputeState,
    Notification,
    Subject,
    readable,
)
from bastion.payments.domain import DisputeStatus
from bastion.payments.errors import DisputeRefused
from bastion.payments.outbound import ProcessorClients
from bastion.platform.db import Tenant
from bastion.platform.vault_client import VaultClient

STRIPE_CONNECTOR = "stripe"
SIGNATURE_HEADER = "Stripe-Signature"
# The API version every request asks for: the one the package's types describe.
STRIPE_VERSION = stripe.api_version
# Stripe's own default tolerance: a signed event older than this is refused as a replay.
NOTIFICATION_TOLERANCE_S = 300
# Stripe's search may trail its writes by up to an hour during its outages (its API reference):
# until a charge is that old, finding no PaymentIntent for it proves nothing.
SEARCH_LAG_MAX = timedelta(hours=1)
# Refunds listed per page and pages read when syncing a refund: 1,000 refunds of one payment.
REFUNDS_PAGE = 100
REFUND_PAGES_MAX = 10
CHARGE_METADATA = "bastion_charge"
REFUND_METADATA = "bastion_refund"

# Stripe's amounts are in the minor unit of its own table, which differs from ISO 4217's
# (kernel/money.py) for a few currencies: ISK is two-decimal at Stripe (docs.stripe.com/currencies).
_ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
_THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

# The form the vault fills (Stripe's parameters, brackets unescaped as the package sends them):
# the card's number and expiry only, never its CVC (ADR 17).
_PAYMENT_METHOD_FORM = (
    "type=card&card[number]={{card.number}}&card[exp_month]={{card.exp_month}}&card[exp_year]={{card.exp_year}}"
)
# What the vault returns of Stripe's answer to it: never its whole body.
_PAYMENT_METHOD_ANSWER = {
    "id": "/id",
    "object": "/object",
    "error_type": "/error/type",
    "error_code": "/error/code",
    "decline_code": "/error/decline_code",
    "error_message": "/error/message",
}

# Declines after which the same card may well pass elsewhere (Stripe's decline codes: "try again").
_SOFT_DECLINES = frozenset(
    {"try_again_later", "issuer_not_available", "reenter_transaction", "processing_error", "approve_with_id"}
)
# Error codes Stripe gives a card error without a decline_code, as Bastion's decline codes.
_CODE_DECLINES = {"card_declined": "generic_decline", "payment_intent_authentication_failure": "authentication_failed"}
# The PaymentIntent's statuses that say one thing alone; `requires_action` is a challenge when it
# names a page, `requires_payment_method` a decline when it names its error; all else is unknown.
_INTENT_RESULTS = {
    "requires_capture": AttemptResult.AUTHORIZED,
    "succeeded": AttemptResult.CAPTURED,
    "canceled": AttemptResult.VOIDED,
}
_REFUND_RESULTS = {
    "succeeded": AttemptResult.REFUNDED,
    "failed": AttemptResult.FAILED,
    "canceled": AttemptResult.FAILED,
}
_DISPUTE_STATUSES = {
    "warning_needs_response": DisputeStatus.WARNING_NEEDS_RESPONSE,
    "needs_response": DisputeStatus.NEEDS_RESPONSE,
    "appeal_needs_response": DisputeStatus.NEEDS_RESPONSE,
    "warning_under_review": DisputeStatus.UNDER_REVIEW,
    "under_review": DisputeStatus.UNDER_REVIEW,
    "appeal_under_review": DisputeStatus.UNDER_REVIEW,
    # An inquiry closed without a chargeback: the merchant keeps the money.
    "warning_closed": DisputeStatus.WON,
    "won": DisputeStatus.WON,
    "lost": DisputeStatus.LOST,
    # Resolved before a chargeback by refunding the cardholder: the money is gone all the same.
    "prevented": DisputeStatus.LOST,
}
_PAYMENT_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.amount_capturable_updated",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
        "payment_intent.processing",
    }
)
_REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed"})
_DISPUTE_EVENTS = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
    }
)
_EVIDENCE_FIELDS = frozenset(DisputeUpdateParamsEvidence.__annotations__)


class AmountNotRepresentable(ValueError):
    """An amount in a currency's ISO 4217 minor unit that Stripe's unit cannot state exactly."""


def stripe_exponent(currency: str) -> int:
    return 0 if currency in _ZERO_DECIMAL else 3 if currency in _THREE_DECIMAL else 2


def _shift(currency: str) -> tuple[int, int]:
    """How many more decimal places Stripe's unit of `currency` has than ISO 4217's (fewer when
    negative), and the factor between the two units."""
    places = stripe_exponent(currency) - exponent(currency)
    factor: int = 10 ** abs(places)
    return places, factor


def to_stripe_amount(amount: int, currency: str) -> int:
    """`amount` (ISO 4217 minor units of `currency`) in Stripe's unit."""
    places, factor = _shift(currency)
    if places >= 0:
        return amount * factor
    whole, rest = divmod(amount, factor)
    if rest:
        raise AmountNotRepresentable(f"{currency} amounts at Stripe have {stripe_exponent(currency)} decimal places.")
    return whole


def from_stripe_amount(amount: int, currency: str) -> int:
    """Stripe's `amount` of `currency` in ISO 4217 minor units (truncated where Stripe's unit is finer)."""
    places, factor = _shift(currency)
    return amount // factor if places >= 0 else amount * factor


_ID = Field(min_length=1, max_length=255)
_CURRENCY = Field(min_length=3, max_length=3)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _MethodAnswer(_Model):
    """What the vault returns of Stripe's answer to the PaymentMethod."""

    id: str | None = Field(default=None, max_length=255)
    object: str | None = Field(default=None, max_length=100)
    error_type: str | None = Field(default=None, max_length=100)
    error_code: str | None = Field(default=None, max_length=100)
    decline_code: str | None = Field(default=None, max_length=100)
    error_message: str | None = Field(default=None, max_length=5_000)


class _Error(_Model):
    code: str | None = Field(default=None, max_length=100)
    decline_code: str | None = Field(default=None, max_length=100)
    message: str | None = Field(default=None, max_length=5_000)


class _Redirect(_Model):
    url: str | None = Field(default=None, max_length=2_048)


class _NextAction(_Model):
    type: str = Field(max_length=100)
    redirect_to_url: _Redirect | None = None


class _Object(_Model):
    """What a PaymentIntent, a refund and a dispute all have, as far as Bastion reads them."""

    id: str = _ID
    amount: int = Field(ge=0)
    currency: str = _CURRENCY


class _Intent(_Object):
    object: Literal["payment_intent"]
    status: str = Field(max_length=100)
    amount_received: int = Field(default=0, ge=0)
    metadata: dict[str, str] = Field(default_factory=dict)
    next_action: _NextAction | None = None
    last_payment_error: _Error | None = None


class _Refund(_Object):
    object: Literal["refund"]
    status: str | None = Field(default=None, max_length=100)
    metadata: dict[str, str] = Field(default_factory=dict)
    failure_reason: str | None = Field(default=None, max_length=100)


class _EvidenceDetails(_Model):
    due_by: int | None = None


class _Dispute(_Object):
    object: Literal["dispute"]
    status: str = Field(max_length=100)
    reason: str = Field(max_length=100)
    payment_intent: str | None = Field(default=None, max_length=255)
    evidence_details: _EvidenceDetails = Field(default_factory=_EvidenceDetails)
    created: int


class _Data(_Model):
    object: dict[str, Any]


class _Event(_Model):
    id: str = _ID
    type: str = Field(max_length=100)
    livemode: bool
    data: _Data


class _NothingSent(stripe.APIConnectionError):
    """No connection was made: no byte of the request reached Stripe."""


class _Transport(stripe.HTTPClient):
    """The package's HTTP layer on Bastion's outbound client (the SSRF guard's, a base URL being
    the merchant's to set), one deadline per request, no retries of its own: a command in phases
    asks again with the same idempotency key."""

    name = "bastion"

    def __init__(self, client: httpx.AsyncClient, timeout_s: float) -> None:
        super().__init__()
        self._client = client
        self._timeout_s = timeout_s

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: str | None = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            async with asyncio.timeout(self._timeout_s):
                response = await self._client.request(method, url, headers=headers, content=post_data)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            # The package's error classes take untyped arguments.
            raise _NothingSent("Stripe could not be reached; nothing was sent.") from None  # type: ignore[no-untyped-call]
        except (TimeoutError, httpx.HTTPError) as error:
            raise stripe.APIConnectionError(f"Stripe did not answer ({type(error).__name__}).") from None  # type: ignore[no-untyped-call]
        return response.content, response.status_code, response.headers


class StripeConnector:
    name = STRIPE_CONNECTOR
    capabilities = KINDS[STRIPE_CONNECTOR].capabilities

    def __init__(
        self, account: OpenedAccount, vault: VaultClient, outbound: ProcessorClients, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        invariant(account.connector == STRIPE_CONNECTOR, "a Stripe connector opened for another connector's account")
        self._account = account
        self._vault = vault
        self._clock = clock
        self._secret_key = account.credentials["secret_key"]
        self._stripe = stripe.StripeClient(
            self._secret_key,
            stripe_version=STRIPE_VERSION,
            base_addresses={"api": account.base_url.rstrip("/")},
            http_client=_Transport(outbound.clients[account.tenant.livemode], outbound.timeout_s),
            max_network_retries=0,
        )

    async def authorize(self, tenant: Tenant, request: Authorization) -> Answer:
        self._check(tenant)
        try:
            amount = to_stripe_amount(request.amount, request.currency)
        except AmountNotRepresentable as refusal:
            return Answer(AttemptResult.FAILED, message=str(refusal))
        method = await self._payment_method(tenant, request)
        if isinstance(method, Answer):
            return method
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": request.currency.lower(),
            "payment_method": method,
            "allowed_payment_method_types": ["card"],
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
            "metadata": {CHARGE_METADATA: request.charge_id},
            "payment_method_options": {
                "card": {"request_three_d_secure": "challenge" if request.three_d_secure_required else "automatic"}
            },
        }
        if request.return_url is not None:
            params["return_url"] = request.return_url
        try:
            intent = await self._stripe.v1.payment_intents.create_async(params, {"idempotency_key": request.charge_id})
        except stripe.StripeError as error:
            return _authorization_error(error)
        return _intent_answer(intent, amount=request.amount, currency=request.currency)

    async def capture(self, tenant: Tenant, charge_id: str, reference: str, amount: int) -> Answer:
        self._check(tenant)
        intent = await self._retrieve(reference)
        if isinstance(intent, Answer):
            return intent
        currency = intent.currency.upper()
        try:
            to_capture = to_stripe_amount(amount, currency)
        except AmountNotRepresentable as refusal:
            return Answer(AttemptResult.FAILED, reference=reference, message=str(refusal))
        call = self._stripe.v1.payment_intents.capture_async(
            reference, {"amount_to_capture": to_capture}, {"idempotency_key": f"{charge_id}:capture"}
        )
        answered = await _answered(call)
        if isinstance(answered, Answer):
            return answered
        captured = _read(_Intent, answered)
        answer = _intent_answer(captured, amount=None, currency=currency)
        if answer.result == AttemptResult.CAPTURED and captured.amount_received != to_capture:
            return Answer(AttemptResult.UNKNOWN, reference=reference, message="Stripe captured another amount than asked.")
        return answer

    async def void(self, tenant: Tenant, charge_id: str, reference: str) -> Answer:
        self._check(tenant)
        call = self._stripe.v1.payment_intents.cancel_async(reference, None, {"idempotency_key": f"{charge_id}:void"})
        canceled = await _answered(call)
        return canceled if isinstance(canceled, Answer) else _intent_answer(canceled, amount=None, currency=None)

    async def refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        self._check(tenant)
        intent = await self._retrieve(reference)
        if isinstance(intent, Answer):
            return intent
        try:
            to_refund = to_stripe_amount(amount, intent.currency.upper())
        except AmountNotRepresentable as refusal:
            return Answer(AttemptResult.FAILED, message=str(refusal))
        params: RefundCreateParams = {"payment_intent": reference, "amount": to_refund, "metadata": {REFUND_METADATA: refund_id}}
        refunded = await _answered(self._stripe.v1.refunds.create_async(params, {"idempotency_key": refund_id}))
        if isinstance(refunded, Answer):
            return refunded
        return _refund_answer(_read(_Refund, refunded), to_refund)

    async def sync(self, tenant: Tenant, charge_id: str, *, amount: int, currency: str) -> Answer:
        self._check(tenant)
        invariant(is_id(charge_id, "ch"), "a sync names a charge by its id")
        # Stripe's search query language; a Bastion id holds no quote to escape.
        query = f"metadata['{CHARGE_METADATA}']:'{charge_id}'"
        found = await _unless_unavailable(self._stripe.v1.payment_intents.search_async({"query": query, "limit": 2}))
        if len(found.data) > 1:
            return Answer(AttemptResult.UNKNOWN, message="Stripe holds more than one PaymentIntent for this charge.")
        if not found.data:
            if self._clock.now() - created_at(charge_id) < SEARCH_LAG_MAX:
                return Answer(AttemptResult.UNKNOWN, message="Stripe's search shows no PaymentIntent yet; asked again later.")
            return Answer(AttemptResult.FAILED, message="Stripe has no PaymentIntent for this charge.")
        # The search's copy may trail; the PaymentIntent itself is read afresh.
        intent = await _unless_unavailable(self._stripe.v1.payment_intents.retrieve_async(found.data[0].id))
        return _intent_answer(intent, amount=amount, currency=currency)

    async def sync_refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        """What Stripe did with the refund `refund_id` of the PaymentIntent `reference`:
        refunded, failed (none there, or Stripe's refusal), or unknown (still pending)."""
        self._check(tenant)
        params: RefundListParams = {"payment_intent": reference, "limit": REFUNDS_PAGE}
        for _ in range(REFUND_PAGES_MAX):
            page = await _unless_unavailable(self._stripe.v1.refunds.list_async(params))
            for listed in page.data:
                refund = _read(_Refund, listed)
                if refund.metadata.get(REFUND_METADATA) == refund_id:
                    return _refund_answer(refund, to_stripe_amount(amount, refund.currency.upper()))
            if not page.has_more or not page.data:
                return Answer(AttemptResult.FAILED, message="Stripe has no such refund.")
            params["starting_after"] = page.data[-1].id
        return Answer(AttemptResult.UNKNOWN, message=f"The payment has more than {REFUNDS_PAGE * REFUND_PAGES_MAX} refunds.")

    async def respond_to_dispute(
        self, tenant: Tenant, reference: str, *, key: str, evidence: Mapping[str, str], submit: bool
    ) -> DisputeState:
        self._check(tenant)
        unknown = sorted(set(evidence) - _EVIDENCE_FIELDS)
        invariant(not unknown, f"evidence fields Stripe does not take: {unknown}")
        params: DisputeUpdateParams = {"evidence": cast(DisputeUpdateParamsEvidence, dict(evidence)), "submit": submit}
        return await self._dispute(self._stripe.v1.disputes.update_async(reference, params, {"idempotency_key": key}))

    async def accept_dispute(self, tenant: Tenant, reference: str, *, key: str) -> DisputeState:
        self._check(tenant)
        return await self._dispute(self._stripe.v1.disputes.close_async(reference, None, {"idempotency_key": key}))

    def handle_notification(self, body: bytes, headers: Mapping[str, str], *, now: int) -> Notification:
        """The event in `body`, verified by the package's verifier with its tolerance (which reads
        the system clock, not `now`)."""
        signature = next((value for name, value in headers.items() if name.lower() == SIGNATURE_HEADER.lower()), None)
        secret = self._account.credentials["webhook_secret"]
        try:
            self._stripe.construct_event(body, signature, secret, tolerance=NOTIFICATION_TOLERANCE_S)
        except (stripe.SignatureVerificationError, UnicodeDecodeError):
            raise AuthenticationFailed(f"The {SIGNATURE_HEADER} header does not verify, or is stale.") from None
        except ValueError:
            raise InvalidRequest("The notification is not a Stripe event.", param="body") from None
        # The body the package verified, read by Bastion's own description of it.
        event = readable(_Event, body, "")
        tenant = self._account.tenant
        if event.livemode != tenant.livemode:
            raise InvalidRequest("The event is of the other mode than the account's.", param="livemode")
        told = functools.partial(
            Notification, id=event.id, type=event.type, merchant_id=tenant.merchant_id, livemode=tenant.livemode
        )
        return _notification(event, told)

    def _check(self, tenant: Tenant) -> None:
        invariant(tenant == self._account.tenant, "a Stripe account used for another merchant or mode")

    async def _payment_method(self, tenant: Tenant, request: Authorization) -> str | Answer:
        """The card as a Stripe PaymentMethod, through the vault; or why not. Nothing here charges
        the card, so every failure but the card's own may be tried on another processor."""
        template = {
            "method": "POST",
            "path": "/v1/payment_methods",
            "headers": {
                "authorization": f"Bearer {self._secret_key}",
                "content-type": "application/x-www-form-urlencoded",
                "idempotency-key": f"{request.charge_id}:payment_method",
                "stripe-version": STRIPE_VERSION,
            },
            "body": _PAYMENT_METHOD_FORM,
        }
        try:
            forwarded = await self._vault.forward(
                tenant, card=request.card, connector=self.name, request=template, answer=_PAYMENT_METHOD_ANSWER
            )
        except ProcessorUnavailable as error:
            return Answer(AttemptResult.FAILED, message=error.message, failover=True)
        except InvalidRequest as refusal:
            # The vault would not send it (the card is gone, say): nothing reached Stripe.
            return Answer(AttemptResult.FAILED, message=refusal.message)
        try:
            answer = _MethodAnswer.model_validate(forwarded["fields"])
        except ValidationError:
            return Answer(AttemptResult.FAILED, message="Stripe's answer to the card is not one Bastion can read.", failover=True)
        if forwarded["status"] == httpx.codes.OK and answer.object == "payment_method" and answer.id is not None:
            return answer.id
        if answer.error_type == "card_error":
            return _decline(answer.error_code, answer.decline_code, answer.error_message, reference=None)
        return Answer(
            AttemptResult.FAILED,
            message=f"Stripe refused the card ({forwarded['status']} {answer.error_code or answer.error_type}).",
            failover=True,
        )

    async def _retrieve(self, reference: str) -> _Intent | Answer:
        """The PaymentIntent `reference` as it is now, or Stripe's refusal."""
        answered = await _answered(self._stripe.v1.payment_intents.retrieve_async(reference))
        return answered if isinstance(answered, Answer) else _read(_Intent, answered)

    async def _dispute(self, call: Awaitable[stripe.Dispute]) -> DisputeState:
        try:
            disputed = await call
        except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as error:
            _unavailable(error)
        except stripe.StripeError as refused:
            raise DisputeRefused(_refusal(refused)) from None
        try:
            return _dispute_state(_Dispute.model_validate(disputed.to_dict()))
        except (ValidationError, InvalidRequest):
            raise ProcessorUnavailable("Stripe's answer about the dispute is not one Bastion can read.") from None


_T = TypeVar("_T")


async def _answered(call: Awaitable[_T]) -> _T | Answer:
    """The call's answer, or Stripe's refusal as an Answer; no answer at all is
    `ProcessorUnavailable` (the command asks again, with the same key)."""
    try:
        return await call
    except stripe.CardError as declined:
        return _declined(declined)
    except (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError) as error:
        _unavailable(error)
    except stripe.StripeError as refused:
        return Answer(AttemptResult.FAILED, message=_refusal(refused))


async def _unless_unavailable(call: Awaitable[_T]) -> _T:
    """The call's answer; any failure is `ProcessorUnavailable`: a sync's refusal says nothing
    of the payment, and it is asked again next round."""
    try:
        return await call
    except stripe.StripeError as error:
        _unavailable(error)


def _unavailable(error: stripe.StripeError) -> NoReturn:
    raise ProcessorUnavailable(f"Stripe did not answer: {_refusal(error)}") from None


# Stripe's messages are short; a longer one is cut here.
_MESSAGE_CHARS_MAX = 500


def _refusal(error: stripe.StripeError) -> str:
    """Stripe's error by its status and code, with its message where that names what was wrong
    with the request (an authentication error's may quote the key, masked: never repeated)."""
    said = f"{type(error).__name__} ({error.http_status or 'no answer'}, {error.code or 'no code'})"
    if isinstance(error, stripe.InvalidRequestError) and error.user_message:
        said += f": {error.user_message[:_MESSAGE_CHARS_MAX]}"
    return said


def _decline_code(code: str | None, decline_code: str | None) -> str:
    return decline_code or _CODE_DECLINES.get(code or "card_declined", code or "generic_decline")


def _authorization_error(error: stripe.StripeError) -> Answer:
    """Stripe's error creating the PaymentIntent, by the error table (docs/connectors.md, Stripe)."""
    if isinstance(error, stripe.CardError):
        return _declined(error)
    if isinstance(error, _NothingSent | stripe.RateLimitError | stripe.AuthenticationError | stripe.PermissionError):
        # Not sent, or refused before anything was processed (Stripe's error handling guide).
        return Answer(AttemptResult.FAILED, message=_refusal(error), failover=True)
    if isinstance(error, stripe.APIConnectionError | stripe.APIError | stripe.IdempotencyError):
        # Sent and no answer, one Stripe documents as indeterminate (5xx), or the key already
        # used for another request: it may have charged.
        return Answer(AttemptResult.UNKNOWN, message=_refusal(error))
    return Answer(AttemptResult.FAILED, message=_refusal(error))


def _declined(error: stripe.CardError) -> Answer:
    details = error.error
    intent = details.payment_intent if details is not None else None
    return _decline(
        error.code,
        details.decline_code if details is not None else None,
        error.user_message,
        reference=intent.id if intent is not None else None,
    )


def _decline(code: str | None, decline_code: str | None, message: str | None, *, reference: str | None) -> Answer:
    """A card error in Bastion's terms: a soft decline may be tried elsewhere."""
    told = _decline_code(code, decline_code)
    return Answer(
        AttemptResult.DECLINED, reference=reference, decline_code=told, message=message, failover=told in _SOFT_DECLINES
    )


_M = TypeVar("_M", bound=BaseModel)


def _read(model: type[_M], answered: stripe.StripeObject) -> _M:
    """Stripe's answer read as `model`; one Bastion cannot read is no answer (asked again)."""
    try:
        return model.model_validate(answered.to_dict())
    except ValidationError:
        raise ProcessorUnavailable(f"Stripe's answer is not a {model.__name__.strip('_')} Bastion can read.") from None


# What an event's object may be, by its `object`.
_OBJECTS: dict[str, type[_Intent | _Refund | _Dispute]] = {"payment_intent": _Intent, "refund": _Refund, "dispute": _Dispute}


def _intent_answer(answered: stripe.PaymentIntent | _Intent, *, amount: int | None, currency: str | None) -> Answer:
    """A PaymentIntent in Bastion's terms; another `amount` (ISO 4217 minor units) or `currency`
    than asked is `unknown`, as is any status not in the table (docs/connectors.md, Stripe)."""
    try:
        intent = answered if isinstance(answered, _Intent) else _Intent.model_validate(answered.to_dict())
    except ValidationError:
        return Answer(AttemptResult.UNKNOWN, message="Stripe's PaymentIntent is not one Bastion can read.")
    told_currency = intent.currency.upper()
    if (currency is not None and told_currency != currency) or (
        amount is not None and from_stripe_amount(intent.amount, told_currency) != amount
    ):
        return Answer(AttemptResult.UNKNOWN, reference=intent.id, message="Stripe answered another amount or currency.")
    result = _INTENT_RESULTS.get(intent.status)
    if result is not None:
        return Answer(result, reference=intent.id)
    redirect = intent.next_action.redirect_to_url if intent.next_action is not None else None
    if intent.status == "requires_action" and redirect is not None and redirect.url is not None:
        return Answer(AttemptResult.REQUIRES_ACTION, reference=intent.id, redirect_url=redirect.url)
    error = intent.last_payment_error
    if intent.status == "requires_payment_method" and error is not None:
        return _decline(error.code, error.decline_code, error.message, reference=intent.id)
    return Answer(AttemptResult.UNKNOWN, reference=intent.id, message=f"Stripe's PaymentIntent is {intent.status[:100]!r}.")


def _refund_answer(refund: _Refund, amount: int | None) -> Answer:
    """A refund in Bastion's terms: pending, or another amount (Stripe's unit) than asked, is `unknown`."""
    result = _REFUND_RESULTS.get(refund.status or "", AttemptResult.UNKNOWN)
    if result == AttemptResult.REFUNDED and amount is not None and refund.amount != amount:
        return Answer(AttemptResult.UNKNOWN, reference=refund.id, message="Stripe refunded another amount than asked.")
    message = f"Stripe's refund is {refund.status}" + (f" ({refund.failure_reason})." if refund.failure_reason else ".")
    return Answer(result, reference=refund.id, message=None if result == AttemptResult.REFUNDED else message)


def _dispute_state(dispute: _Dispute) -> DisputeState:
    status = _DISPUTE_STATUSES.get(dispute.status)
    if status is None:
        raise InvalidRequest(f"Bastion does not know the dispute status {dispute.status[:100]!r}.", param="data.object.status")
    currency = dispute.currency.upper()
    return DisputeState(
        reference=dispute.id,
        status=status,
        amount=from_stripe_amount(dispute.amount, currency),
        currency=currency,
        reason=dispute.reason,
        # Stripe leaves it out once no evidence can be sent any more.
        evidence_due_by=dispute.evidence_details.due_by or dispute.created,
    )


def _notification(event: _Event, told: "functools.partial[Notification]") -> Notification:
    """What the event says; `told` makes the Notification of the account's tenant."""
    kind = _OBJECTS.get(str(event.data.object.get("object")))
    if kind is None:
        raise InvalidRequest("The event is about an object Bastion does not read.", param="data.object.object")
    changed = readable(kind, orjson.dumps(event.data.object), "data.object.")
    answer: Answer | None
    if event.type in _PAYMENT_EVENTS and isinstance(changed, _Intent):
        subject, bastion_id = Subject.PAYMENT, changed.metadata.get(CHARGE_METADATA)
        answer = None if bastion_id is None else _intent_answer(changed, amount=None, currency=None)
    elif event.type in _REFUND_EVENTS and isinstance(changed, _Refund):
        subject, bastion_id = Subject.REFUND, changed.metadata.get(REFUND_METADATA)
        answer = None if bastion_id is None else _refund_answer(changed, None)
    elif event.type in _DISPUTE_EVENTS and isinstance(changed, _Dispute):
        state = _dispute_state(changed)
        # A dispute carries none of the payment's metadata: it names the PaymentIntent (ADR 27).
        reference = changed.payment_intent or changed.id
        return told(
            subject=Subject.DISPUTE, reference=reference, answer=None, amount=state.amount, currency=state.currency, dispute=state
        )
    else:
        raise InvalidRequest(
            f"Bastion does not take the Stripe event {event.type[:100]!r} about a {changed.object}.", param="type"
        )
    currency = changed.currency.upper()
    # A PaymentIntent or refund Bastion did not make (no id of Bastion's) is told, and changes nothing.
    return told(
        subject=subject,
        reference=bastion_id or changed.id,
        answer=answer,
        amount=from_stripe_amount(changed.amount, currency),
        currency=currency,
    )
