"""The Braintree connector (ADR 28): the `braintree` package's own gateway builds every request
and reads every answer into its `Transaction`, `Dispute` and `ErrorResult`; only its HTTP layer
is Bastion's. The package is synchronous, so it runs in a worker thread, and each request it makes
is sent from the event loop: the sale, which carries card data, through the vault's forward; every
other call to the account's base URL through Bastion's guarded outbound client. Notifications
are verified by the package's `webhook_notification.parse`.

Braintree takes no idempotency key: Bastion's ids are its `order_id`s (the charge's for a sale, the
refund's for a refund), and each flow looks at what Braintree holds before it acts (docs/connectors.md,
Braintree)."""

import asyncio
import binascii
import concurrent.futures
import hashlib
import itertools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import parse_qs, urlsplit
from xml.parsers.expat import ExpatError

import braintree
import httpx
from braintree.exceptions.authentication_error import AuthenticationError
from braintree.exceptions.authorization_error import AuthorizationError
from braintree.exceptions.gateway_timeout_error import GatewayTimeoutError
from braintree.exceptions.invalid_signature_error import InvalidSignatureError
from braintree.exceptions.not_found_error import NotFoundError
from braintree.exceptions.request_timeout_error import RequestTimeoutError
from braintree.exceptions.server_error import ServerError
from braintree.exceptions.service_unavailable_error import ServiceUnavailableError
from braintree.exceptions.too_many_requests_error import TooManyRequestsError
from braintree.exceptions.unexpected_error import UnexpectedError
from braintree.exceptions.upgrade_required_error import UpgradeRequiredError

from bastion.connectors import KINDS, OpenedAccount
from bastion.kernel.errors import AuthenticationFailed, InvalidRequest, ProcessorUnavailable, ProcessorUnreachable
from bastion.kernel.money import Money
from bastion.payments.connectors import (
    Answer,
    AttemptResult,
    Authorization,
    DisputeState,
    Notification,
    Subject,
)
from bastion.payments.errors import DisputeRefused
from bastion.payments.outbound import ProcessorClients
from bastion.platform.db import Tenant
from bastion.platform.vault_client import VaultClient

BRAINTREE: Final = "braintree"
# Calls to Braintree in flight at once in this process: each holds a worker thread while the
# package waits for its answer (asyncio's default pool has min(32, CPUs + 4) for everything).
THREADS_MAX: Final = 64
# How long a worker thread waits for the event loop to send a request: a backstop above every
# sender's own deadline (the vault client waits the forward timeout, at most 60 s, plus 5 s).
BRIDGE_WAIT_MAX_S: Final = 120.0
# Transactions read for one order id or one transaction's refunds: Bastion sends one sale per
# charge and one credit per refund, so more than a few already says something went wrong.
SEARCH_RESULTS_MAX: Final = 50
# Braintree sends a notification it could not deliver again every hour for 24 hours (3 in its
# sandbox); one signed longer ago than this is refused as a replay, as is one from further in the
# future than the skew.
NOTIFICATION_AGE_MAX_S: Final = 25 * 3600
NOTIFICATION_SKEW_S: Final = 300
# The forward's code when the vault could not connect to Braintree: nothing was sent.
# Where Braintree's texts are passed on (a status, a processor's message), they are cut to this.
_TEXT_MAX = 200
_DEFAULT_PORTS = {"https": 443, "http": 80}

_CAPTURED_STATUSES = frozenset({"submitted_for_settlement", "settling", "settled", "settlement_pending", "settlement_confirmed"})
# A sale's status in Bastion's terms (docs/connectors.md, Braintree); any other is `unknown`,
# `authorizing` (the processor has not answered yet) included.
SALE_RESULTS: Final[Mapping[str, AttemptResult]] = {
    "authorized": AttemptResult.AUTHORIZED,
    **dict.fromkeys(_CAPTURED_STATUSES, AttemptResult.CAPTURED),
    "voided": AttemptResult.VOIDED,
    # The authorization lapsed uncaptured: nothing is held any more, as after a void.
    "authorization_expired": AttemptResult.VOIDED,
    "processor_declined": AttemptResult.DECLINED,
    "gateway_rejected": AttemptResult.DECLINED,
    # The capture was refused when it settled: no money moved.
    "settlement_declined": AttemptResult.DECLINED,
    "settlement_failed": AttemptResult.DECLINED,
    # Braintree could not send it to the processor: nothing happened there.
    "failed": AttemptResult.FAILED,
}
# A credit's (a refund's) status; any other is `unknown`.
REFUND_RESULTS: Final[Mapping[str, AttemptResult]] = {
    **dict.fromkeys(_CAPTURED_STATUSES, AttemptResult.REFUNDED),
    **dict.fromkeys(
        ("processor_declined", "gateway_rejected", "failed", "settlement_declined", "settlement_failed", "voided"),
        AttemptResult.FAILED,
    ),
}
# Braintree's processor response codes (its "Processor responses" reference) as Stripe's
# decline codes; another 2000-class code is `generic_decline`, another 3000-class one `try_again_later`.
PROCESSOR_DECLINES: Final[Mapping[str, str]] = {
    "2000": "do_not_honor",
    "2001": "insufficient_funds",
    "2002": "card_velocity_exceeded",
    "2003": "card_velocity_exceeded",
    "2004": "expired_card",
    "2005": "incorrect_number",
    "2006": "invalid_expiry_year",
    "2007": "invalid_account",
    "2008": "incorrect_number",
    "2009": "incorrect_number",
    "2010": "incorrect_cvc",
    "2011": "call_issuer",
    "2012": "lost_card",
    "2013": "stolen_card",
    "2014": "fraudulent",
    "2015": "transaction_not_allowed",
    "2016": "duplicate_transaction",
    "2017": "stop_payment_order",
    "2018": "stop_payment_order",
    "2019": "transaction_not_allowed",
    "2020": "security_violation",
    "2021": "security_violation",
    "2022": "new_account_information_available",
    "2023": "card_not_supported",
    "2024": "card_not_supported",
    **dict.fromkeys(("2025", "2026", "2027", "2028", "2029", "2030", "2031", "2033"), "processing_error"),
    "2032": "not_permitted",
    "2034": "no_action_taken",
    "2038": "generic_decline",
    "2041": "call_issuer",
    "2043": "do_not_try_again",
    "2044": "call_issuer",
    "2046": "generic_decline",
    "2047": "pickup_card",
    "2048": "invalid_amount",
    "2051": "incorrect_number",
    "2053": "lost_card",
    "2057": "restricted_card",
    "2059": "incorrect_zip",
    "2060": "incorrect_cvc",
    "2064": "currency_not_supported",
    "2099": "authentication_required",
    "3000": "try_again_later",
}
# A gateway rejection's reason (the merchant's own rules at Braintree) as a decline code.
GATEWAY_REJECTIONS: Final[Mapping[str, str]] = {
    "fraud": "fraudulent",
    "risk_threshold": "fraudulent",
    "cvv": "incorrect_cvc",
    "avs": "incorrect_zip",
    "avs_and_cvv": "incorrect_cvc",
    "duplicate": "duplicate_transaction",
    "three_d_secure": "authentication_required",
    "excessive_retry": "do_not_try_again",
    "application_incomplete": "processing_error",
    "token_issuance": "processing_error",
}
# Declines another processor may succeed with (routing's failover): the processor network's
# own trouble, and a card whose issuer asks for 3-D Secure, which Braintree runs only in its
# client SDK (ADR 28). Hard declines and `fraudulent` never fail over.
FAILOVER_DECLINES: Final = frozenset({"try_again_later", "authentication_required"})
# Braintree's dispute statuses as Bastion's.
DISPUTE_STATUSES: Final[Mapping[str, str]] = {
    "open": "needs_response",
    "disputed": "under_review",
    "under_review": "under_review",
    "won": "won",
    "lost": "lost",
    "accepted": "lost",
    "auto_accepted": "lost",
    "expired": "lost",
}
# Braintree's dispute reasons as Stripe's.
DISPUTE_REASONS: Final[Mapping[str, str]] = {
    "fraud": "fraudulent",
    "duplicate": "duplicate",
    "product_not_received": "product_not_received",
    "product_unsatisfactory": "product_unacceptable",
    "credit_not_processed": "credit_not_processed",
    "cancelled_recurring_transaction": "subscription_canceled",
    "not_recognized": "unrecognized",
    "invalid_account": "incorrect_account_details",
}
_TRANSACTION_KINDS = frozenset({"transaction_settled", "transaction_settlement_declined", "refund_failed"})
_DISPUTE_KINDS = frozenset(
    {
        "dispute_opened",
        "dispute_under_review",
        "dispute_disputed",
        "dispute_won",
        "dispute_lost",
        "dispute_accepted",
        "dispute_auto_accepted",
        "dispute_expired",
    }
)
# Braintree's refusals of a request before it acted on it, by the package's exception.
_REFUSALS: Final[Mapping[type[Exception], tuple[int, str]]] = {
    AuthenticationError: (401, "Braintree refused the account's API keys (401)."),
    AuthorizationError: (403, "Braintree refused the request: the API key's role does not allow it (403)."),
    NotFoundError: (404, "Braintree has no such merchant or record (404)."),
    UpgradeRequiredError: (426, "Braintree no longer accepts this version of its API (426)."),
    TooManyRequestsError: (429, "Braintree is limiting the account's request rate (429)."),
    ServiceUnavailableError: (503, "Braintree is down for maintenance (503)."),
}
# Refusals that pass: the same request may be sent again later.
_PASSING = frozenset({429, 503})
# Braintree failed, or answered what Bastion cannot read: it may have acted.
_UNANSWERED = (ServerError, GatewayTimeoutError, RequestTimeoutError, UnexpectedError)
# What the package raises reading an answer that is not the XML it expects.
_UNREADABLE = (ExpatError, binascii.Error, KeyError, AttributeError, TypeError, ValueError, ArithmeticError)
_NO_THREE_D_SECURE = (
    "Braintree runs 3-D Secure in its client SDK only: a payment that must be challenged goes to another connector."
)

_T = TypeVar("_T")
# Sends one request of the package (method, path, headers, body): Braintree's status and body.
Send = Callable[[str, str, Mapping[str, Any], str], Coroutine[Any, Any, tuple[int, str]]]
_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=THREADS_MAX, thread_name_prefix="braintree")


class _Refused(Exception):
    """Braintree refused the request before acting on it (`_REFUSALS`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Bridge:
    """The package's HTTP strategy (`Configuration(http_strategy=...)`). The package runs in a
    worker thread; each request it makes is sent by `send` on the event loop, and the thread
    waits for the answer. Exceptions of `send` reach the package's caller as they are."""

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Send) -> None:
        self._loop = loop
        self._send = send

    def http_do(self, http_verb: str, path: str, headers: Mapping[str, Any], request_body: str | None) -> list[Any]:
        # The package gives the whole URL of its Environment; the connector's senders know their own base.
        sent = asyncio.run_coroutine_threadsafe(
            self._send(http_verb, urlsplit(path).path, headers, request_body or ""), self._loop
        )
        try:
            status, body = sent.result(timeout=BRIDGE_WAIT_MAX_S)
        except TimeoutError:
            sent.cancel()
            raise ProcessorUnavailable("Braintree did not answer in time.") from None
        return [status, body]

    def close(self) -> None:
        """Nothing to release: the connector owns its client (`Configuration.close` calls this)."""


class BraintreeConnector:
    name = BRAINTREE
    capabilities = KINDS[BRAINTREE].capabilities

    def __init__(self, account: OpenedAccount, vault: VaultClient, clients: ProcessorClients) -> None:
        self._account = account
        self._vault = vault
        self._timeout_s = clients.timeout_s
        self._base_url = account.base_url.rstrip("/")
        # The base URL is the merchant's to set: checked again at every connection, as webhook URLs are.
        self._client = clients.clients[account.tenant.livemode]

    async def authorize(self, tenant: Tenant, request: Authorization) -> Answer:
        if request.three_d_secure_required:
            return Answer(AttemptResult.FAILED, message=_NO_THREE_D_SECURE, failover=True)
        # Looked at first: a command resumed after its sale reached Braintree finds it rather than
        # charging again. Nothing is sent when the look fails, so another processor may be tried.
        try:
            earlier = await self._run(lambda gateway: _sales(gateway, request.charge_id), self._direct)
        except (ProcessorUnavailable, _Refused) as failure:
            return Answer(AttemptResult.FAILED, message=failure.message, failover=True)
        if earlier:
            return charge_answer(earlier, amount=request.amount, currency=request.currency)
        return await self._sell(tenant, request)

    async def capture(self, tenant: Tenant, charge_id: str, reference: str, amount: int) -> Answer:
        def submit(gateway: Any) -> tuple[Any, str | None]:
            held = gateway.transaction.find(reference)
            if held.status in _CAPTURED_STATUSES:
                # Asked again after it went through.
                return held, None
            if held.status != "authorized":
                return held, f"Braintree cannot capture a transaction that is {_cut(held.status)}."
            return _outcome(gateway.transaction.submit_for_settlement(reference, major_units(amount, held.currency_iso_code)))

        held, refusal = await self._changing(submit)
        if refusal is not None:
            return Answer(AttemptResult.FAILED, reference=reference, message=refusal)
        return transaction_answer(held, amount=amount, currency=getattr(held, "currency_iso_code", None))

    async def void(self, tenant: Tenant, charge_id: str, reference: str) -> Answer:
        def cancel(gateway: Any) -> tuple[Any, str | None]:
            held = gateway.transaction.find(reference)
            if held.status in ("voided", "authorization_expired"):
                # Asked again after it went through, or lapsed at Braintree: nothing is held.
                return held, None
            return _outcome(gateway.transaction.void(reference))

        held, refusal = await self._changing(cancel)
        if refusal is not None:
            return Answer(AttemptResult.FAILED, reference=reference, message=refusal)
        return transaction_answer(held, amount=None, currency=None)

    async def refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        def credit(gateway: Any) -> tuple[Any, str | None]:
            original = gateway.transaction.find(reference)
            earlier = [refund for refund in _refunds(gateway, original) if refund.order_id == refund_id]
            if earlier:
                # Asked again after it went through: one credit per refund id.
                return earlier[0], None
            options = {"amount": major_units(amount, original.currency_iso_code), "order_id": refund_id}
            return _outcome(gateway.transaction.refund(reference, options))

        credited, refusal = await self._changing(credit)
        if refusal is not None:
            return Answer(AttemptResult.FAILED, reference=reference, message=refusal)
        return refund_answer(credited, amount=amount)

    async def sync(self, tenant: Tenant, charge_id: str, *, amount: int, currency: str) -> Answer:
        try:
            sales = await self._run(lambda gateway: _sales(gateway, charge_id), self._direct)
        except _Refused as refusal:
            # Says nothing of the attempt: asked again next round.
            raise ProcessorUnavailable(refusal.message) from None
        if not sales:
            return Answer(AttemptResult.FAILED, message="Braintree has no transaction for this charge.")
        return charge_answer(sales, amount=amount, currency=currency)

    async def sync_refund(self, tenant: Tenant, refund_id: str, reference: str, amount: int) -> Answer:
        """What Braintree did with the refund `refund_id` of the transaction `reference`:
        `refunded`, `failed` (none was made) or `unknown`."""

        def credits_of(gateway: Any) -> list[Any]:
            return [refund for refund in _refunds(gateway, gateway.transaction.find(reference)) if refund.order_id == refund_id]

        try:
            found = await self._run(credits_of, self._direct)
        except _Refused as refusal:
            if refusal.status == httpx.codes.NOT_FOUND:
                return Answer(AttemptResult.FAILED, reference=reference, message=refusal.message)
            raise ProcessorUnavailable(refusal.message) from None
        if not found:
            return Answer(AttemptResult.FAILED, reference=reference, message="Braintree has no credit for this refund.")
        if len(found) > 1:
            return Answer(AttemptResult.UNKNOWN, message=f"Braintree holds {len(found)} credits for this refund.")
        return refund_answer(found[0], amount=amount)

    async def respond_to_dispute(
        self, tenant: Tenant, reference: str, *, key: str, evidence: Mapping[str, str], submit: bool
    ) -> DisputeState:
        raise DisputeRefused(
            "Braintree takes dispute evidence as categorized documents and texts that Bastion's evidence "
            "fields do not map onto: respond to this dispute in Braintree's Control Panel."
        )

    async def accept_dispute(self, tenant: Tenant, reference: str, *, key: str) -> DisputeState:
        def accept(gateway: Any) -> DisputeState:
            disputed = gateway.dispute.find(reference)
            if disputed.status != "open":
                # Accepted already (asked again), or past accepting: the dispute as it is.
                return dispute_state(disputed)
            accepted = gateway.dispute.accept(reference)
            if not accepted.is_success:
                raise DisputeRefused(_cut(accepted.message))
            return dispute_state(gateway.dispute.find(reference))

        try:
            return await self._run(accept, self._direct)
        except _Refused as refusal:
            if refusal.status in _PASSING:
                raise ProcessorUnavailable(refusal.message) from None
            raise DisputeRefused(refusal.message) from None

    def handle_notification(self, body: bytes, headers: Mapping[str, str], *, now: int) -> Notification:
        signature, payload = _signed_form(body)
        try:
            parsed = self._gateway(None).webhook_notification.parse(signature, payload)
        except InvalidSignatureError:
            raise AuthenticationFailed("The notification's signature does not verify with this account's keys.") from None
        except _UNREADABLE:
            raise InvalidRequest("The notification is not one Bastion can read (bt_payload).", param="bt_payload") from None
        signed_at = _readable(lambda: int(parsed.timestamp.replace(tzinfo=UTC).timestamp()), "timestamp")
        if not -NOTIFICATION_SKEW_S <= now - signed_at <= NOTIFICATION_AGE_MAX_S:
            raise AuthenticationFailed("The notification is too old, or from the future: refused as a replay.")
        kind = str(parsed.kind)
        if kind in _TRANSACTION_KINDS:
            return self._transaction_notification(kind, signed_at, _readable(lambda: parsed.transaction, "subject.transaction"))
        if kind in _DISPUTE_KINDS:
            return self._dispute_notification(kind, signed_at, _readable(lambda: parsed.dispute, "subject.dispute"))
        raise InvalidRequest(f"Bastion does not read Braintree's {_cut(kind)!r} notifications.", param="bt_payload")

    def _transaction_notification(self, kind: str, signed_at: int, transaction: Any) -> Notification:
        currency = _readable(lambda: str(transaction.currency_iso_code), "subject.transaction.currency_iso_code")
        amount = _readable(lambda: Money.from_decimal(transaction.amount, currency).amount_minor, "subject.transaction.amount")
        refunded = kind == "refund_failed" or getattr(transaction, "type", None) == "credit"
        return Notification(
            id=notification_id(kind, signed_at, _readable(lambda: str(transaction.id), "subject.transaction.id")),
            type=kind,
            merchant_id=self._account.tenant.merchant_id,
            livemode=self._account.tenant.livemode,
            subject=Subject.REFUND if refunded else Subject.PAYMENT,
            reference=_order_id(getattr(transaction, "order_id", None), "subject.transaction.order_id"),
            answer=refund_answer(transaction, amount=None)
            if refunded
            else transaction_answer(transaction, amount=None, currency=None),
            amount=amount,
            currency=currency,
        )

    def _dispute_notification(self, kind: str, signed_at: int, disputed: Any) -> Notification:
        state = _readable(lambda: dispute_state(disputed), "subject.dispute")
        return Notification(
            id=notification_id(kind, signed_at, state.reference),
            type=kind,
            merchant_id=self._account.tenant.merchant_id,
            livemode=self._account.tenant.livemode,
            subject=Subject.DISPUTE,
            reference=_order_id(
                getattr(getattr(disputed, "transaction", None), "order_id", None), "subject.dispute.transaction.order_id"
            ),
            answer=None,
            amount=state.amount,
            currency=state.currency,
            dispute=state,
        )

    async def _sell(self, tenant: Tenant, request: Authorization) -> Answer:
        """The sale, through the vault's forward."""
        sale = {
            "amount": major_units(request.amount, request.currency),
            "order_id": request.charge_id,
            # Filled by the vault; Braintree takes the expiry as two fields.
            "credit_card": {
                "number": "{{card.number}}",
                "expiration_month": "{{card.exp_month}}",
                "expiration_year": "{{card.exp_year}}",
            },
            "options": {"submit_for_settlement": request.capture},
        }
        try:
            result = await self._run(lambda gateway: gateway.transaction.sale(sale), self._forwarder(tenant, request.card))
        except (InvalidRequest, _Refused, ProcessorUnavailable) as failure:
            return _unsold(failure)
        if result.transaction is None:
            # A validation error: Braintree refused the request as written.
            return Answer(AttemptResult.FAILED, message=_cut(result.message))
        answer = transaction_answer(result.transaction, amount=request.amount, currency=request.currency)
        if getattr(result.transaction, "gateway_rejection_reason", None) == "duplicate":
            # The merchant's duplicate check saw the same card and amount just before: perhaps this
            # charge's own earlier sale, not yet found by the look. The sync settles which.
            return Answer(AttemptResult.UNKNOWN, reference=answer.reference, message="Braintree rejected it as a duplicate.")
        return answer

    async def _changing(self, change: Callable[[Any], tuple[Any, str | None]]) -> tuple[Any, str | None]:
        """Run a flow that changes a transaction: a refusal that passes (429, 503) or no answer
        is asked again (`ProcessorUnavailable`), any other refusal is the flow's answer."""
        try:
            return await self._run(change, self._direct)
        except _Refused as refusal:
            if refusal.status in _PASSING:
                raise ProcessorUnavailable(refusal.message) from None
            return None, refusal.message

    async def _run(self, operation: Callable[[Any], _T], send: Send) -> _T:
        """`operation` on a gateway of the package whose requests `send` sends, in a worker
        thread; the package's refusals as `_Refused`, its failures as `ProcessorUnavailable`."""
        loop = asyncio.get_running_loop()
        gateway = self._gateway(_Bridge(loop, send))
        try:
            return await loop.run_in_executor(_THREADS, operation, gateway)
        except tuple(_REFUSALS) as refusal:
            raise _Refused(*_REFUSALS[type(refusal)]) from None
        except _UNANSWERED as failure:
            raise ProcessorUnavailable(f"Braintree failed to answer ({type(failure).__name__}).") from None
        except _UNREADABLE as unreadable:
            raise ProcessorUnavailable(f"Braintree's answer is not one Bastion can read ({type(unreadable).__name__}).") from None

    def _gateway(self, bridge: _Bridge | None) -> Any:
        """The package's gateway for this account; its requests go through `bridge` (none for
        verifying notifications, which send nothing)."""
        parts = urlsplit(self._base_url)
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
        # Only the path of the package's URLs is used: the senders know where they send.
        environment = braintree.Environment(BRAINTREE, parts.hostname, str(port), "", parts.scheme == "https", None)
        credentials = self._account.credentials
        configuration = braintree.Configuration(
            environment=environment,
            merchant_id=credentials["merchant_id"],
            public_key=credentials["public_key"],
            private_key=credentials["private_key"],
            http_strategy=None if bridge is None else lambda _configuration, _environment: bridge,
        )
        return braintree.BraintreeGateway(configuration)

    async def _direct(self, method: str, path: str, headers: Mapping[str, Any], body: str) -> tuple[int, str]:
        """A request without card data, to the account's base URL, under one deadline."""
        try:
            async with asyncio.timeout(self._timeout_s):
                answer = await self._client.request(method, self._base_url + path, headers=dict(headers), content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise ProcessorUnreachable("Braintree could not be reached; nothing was sent.") from None
        except (TimeoutError, httpx.HTTPError) as failure:
            raise ProcessorUnavailable(f"Braintree did not answer ({type(failure).__name__}).") from None
        return answer.status_code, answer.text

    def _forwarder(self, tenant: Tenant, card: str) -> Send:
        """Sends a request with card placeholders through the vault's forward."""

        async def forward(method: str, path: str, headers: Mapping[str, Any], body: str) -> tuple[int, str]:
            template = {
                "method": method,
                # Not Accept-Encoding: the vault's client negotiates its own, and decodes the answer.
                "headers": {name: _header(value) for name, value in headers.items() if name.lower() != "accept-encoding"},
                "path": path,
                "body": body,
            }
            # The whole answer (XML, with card numbers masked by the vault), for the package to read.
            forwarded = await self._vault.forward(tenant, card=card, connector=self.name, request=template, answer=None)
            return int(forwarded["status"]), str(forwarded["body"] or "")

        return forward


def major_units(amount: int, currency: str) -> str:
    """Bastion's minor units as Braintree's decimal amount ("10.00" USD, "1000" JPY, "1.234" KWD)."""
    return str(Money(amount, currency).to_decimal())


def _unsold(failure: InvalidRequest | _Refused | ProcessorUnavailable) -> Answer:
    """A sale that got no transaction back, by why (the error classification table)."""
    if isinstance(failure, InvalidRequest):
        # The vault would not send it (the card is gone, say): nothing reached Braintree.
        return Answer(AttemptResult.FAILED, message=failure.message)
    if isinstance(failure, _Refused) or failure.code == ProcessorUnreachable.code:
        # Refused before Braintree acted on it, or never sent: another processor may be tried.
        return Answer(AttemptResult.FAILED, message=failure.message, failover=True)
    return Answer(AttemptResult.UNKNOWN, message=failure.message)


def transaction_answer(transaction: Any, *, amount: int | None, currency: str | None) -> Answer:
    """A sale as Braintree holds it, in Bastion's terms; an unmapped status, or an amount or
    currency other than asked, is `unknown`."""
    answer = _held(transaction, SALE_RESULTS, amount=amount, currency=currency)
    if answer.result not in (AttemptResult.DECLINED, AttemptResult.FAILED):
        return answer
    decline_code = _decline_code(transaction)
    failover = decline_code in FAILOVER_DECLINES or transaction.status == "failed"
    return replace(answer, decline_code=decline_code, message=_response_text(transaction), failover=failover)


def refund_answer(credit: Any, *, amount: int | None) -> Answer:
    """A credit (Braintree's refund) in Bastion's terms."""
    answer = _held(credit, REFUND_RESULTS, amount=amount, currency=None)
    return replace(answer, message=_response_text(credit)) if answer.result == AttemptResult.FAILED else answer


def charge_answer(sales: Sequence[Any], *, amount: int, currency: str) -> Answer:
    """What the sales Braintree holds for one charge say: the one that stands (authorized,
    captured, voided or unknown) over any declined, and `unknown` if more than one stands."""
    answers = [transaction_answer(sale, amount=amount, currency=currency) for sale in sales]
    standing = [answer for answer in answers if answer.result not in (AttemptResult.DECLINED, AttemptResult.FAILED)]
    if len(standing) > 1:
        return Answer(AttemptResult.UNKNOWN, message=f"Braintree holds {len(standing)} transactions for this charge.")
    return standing[0] if standing else answers[-1]


def dispute_state(disputed: Any) -> DisputeState:
    """A Braintree dispute in Bastion's terms. Evidence is due at the start (UTC) of its reply-by
    date; a closed one has none, and its date received stands in (Bastion reads the due date of
    a dispute it opens only)."""
    status = DISPUTE_STATUSES[str(disputed.status)]
    if status == "needs_response" and getattr(disputed, "kind", None) == "retrieval":
        # A request for information: no money is taken yet, as in Stripe's inquiries.
        status = "warning_needs_response"
    currency = str(disputed.currency_iso_code)
    due_on = getattr(disputed, "reply_by_date", None) or disputed.received_date
    if not isinstance(due_on, date):
        raise TypeError("a dispute's dates are dates")
    return DisputeState(
        reference=str(disputed.id),
        status=status,
        amount=Money.from_decimal(Decimal(disputed.amount_disputed), currency).amount_minor,
        currency=currency,
        reason=DISPUTE_REASONS.get(str(getattr(disputed, "reason", "")), "general"),
        evidence_due_by=int(datetime.combine(due_on, time(), UTC).timestamp()),
    )


def notification_id(kind: str, signed_at: int, subject_id: str) -> str:
    """Braintree's notifications carry no id: one derived from what makes one (its kind, when it
    was signed, what it is about), the same for every delivery of it."""
    digest = hashlib.sha256(f"{kind}|{signed_at}|{subject_id}".encode()).hexdigest()
    return f"btn_{digest[:32]}"


def _held(transaction: Any, results: Mapping[str, AttemptResult], *, amount: int | None, currency: str | None) -> Answer:
    """`transaction`'s status by `results`, with its id; `unknown` for a status not there, or
    an amount or currency other than asked."""
    status = str(getattr(transaction, "status", ""))
    reference = getattr(transaction, "id", None)
    result = results.get(status, AttemptResult.UNKNOWN)
    if result == AttemptResult.UNKNOWN:
        return Answer(AttemptResult.UNKNOWN, reference=reference, message=f"Braintree answered the status {_cut(status)!r}.")
    if not _as_asked(transaction, amount=amount, currency=currency):
        return Answer(AttemptResult.UNKNOWN, reference=reference, message="Braintree answered another amount or currency.")
    return Answer(result, reference=reference)


def _response_text(transaction: Any) -> str:
    return _cut(getattr(transaction, "processor_response_text", None) or f"Braintree answered {transaction.status}.")


def _as_asked(transaction: Any, *, amount: int | None, currency: str | None) -> bool:
    answered_currency = getattr(transaction, "currency_iso_code", None)
    if currency is not None and answered_currency != currency:
        return False
    if amount is None:
        return True
    try:
        return Money.from_decimal(transaction.amount, str(answered_currency)).amount_minor == amount
    except (InvalidRequest, AttributeError):
        return False


def _decline_code(transaction: Any) -> str:
    if getattr(transaction, "status", None) == "gateway_rejected":
        return GATEWAY_REJECTIONS.get(str(getattr(transaction, "gateway_rejection_reason", "")), "generic_decline")
    code = str(getattr(transaction, "processor_response_code", ""))
    if code in PROCESSOR_DECLINES:
        return PROCESSOR_DECLINES[code]
    return "try_again_later" if code.startswith("3") else "generic_decline"


def _sales(gateway: Any, charge_id: str) -> list[Any]:
    search = braintree.TransactionSearch
    return _found(gateway, search.order_id == charge_id, search.type == braintree.Transaction.Type.Sale)


def _refunds(gateway: Any, original: Any) -> list[Any]:
    """The credits of `original`, every one its record lists, or `ProcessorUnavailable` while
    Braintree's search does not show them all yet."""
    ids = list(getattr(original, "refund_ids", None) or [])
    if not ids:
        return []
    if len(ids) > SEARCH_RESULTS_MAX:
        raise ProcessorUnavailable(f"The transaction has more than {SEARCH_RESULTS_MAX} refunds: Bastion reads no more.")
    found = _found(gateway, braintree.TransactionSearch.ids.in_list(ids))
    if {credit.id for credit in found} != set(ids):
        raise ProcessorUnavailable("Braintree's search does not show every refund of the transaction yet.")
    return found


def _found(gateway: Any, *terms: Any) -> list[Any]:
    return list(itertools.islice(gateway.transaction.search(*terms).items, SEARCH_RESULTS_MAX))


def _outcome(result: Any) -> tuple[Any, str | None]:
    """A package result: its transaction, or Braintree's message when it refused (a validation error)."""
    if result.is_success or result.transaction is not None:
        return result.transaction, None
    return None, _cut(result.message)


def _signed_form(body: bytes) -> tuple[str, str]:
    """`bt_signature` and `bt_payload` of a notification's form-encoded body."""
    try:
        form = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The notification is not a form Bastion can read.", param="bt_payload") from None
    payloads, signatures = form.get("bt_payload", []), form.get("bt_signature", [])
    if len(payloads) != 1:
        raise InvalidRequest("The notification needs one bt_payload.", param="bt_payload")
    if len(signatures) != 1:
        raise AuthenticationFailed("The notification needs one bt_signature.")
    return signatures[0], payloads[0]


def _readable(read: Callable[[], _T], field: str) -> _T:
    """`read()`, or `InvalidRequest` naming the notification's field it could not read."""
    try:
        return read()
    except (*_UNREADABLE, InvalidRequest):
        raise InvalidRequest(f"The notification is not one Bastion can read ({field}).", param="bt_payload") from None


def _order_id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"The notification names no Bastion id ({field}).", param="bt_payload")
    return value


def _header(value: Any) -> str:
    # The package gives Authorization as bytes.
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _cut(text: Any) -> str:
    return str(text)[:_TEXT_MAX]
