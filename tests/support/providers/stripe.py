"""A local Stripe for tests: Stripe's wire format (form-encoded requests with bracketed keys, JSON
answers, its error envelope, `Idempotency-Key` replays of the first answer, a `Request-Id` on
each), every request's parameters checked against the `stripe` package's typed parameters for
that call (`400 parameter_unknown` for a key it does not know), and answers built from Stripe's
published example objects (`stripe/fixtures3.json` of the vendor specs) with the fields the
request decides written over. It decides by the sandbox's test cards, keeps its own record of
each account's (each secret key's) PaymentMethods, PaymentIntents, refunds and disputes (the
judge of "no double charge"), records the events Stripe would send and signs them as Stripe
does, and takes chaos for the next request of a path (an error, a delay, a dropped connection,
a status Bastion does not know)."""

import copy
import enum
import hashlib
import json
import re
import secrets
import threading
import time
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import parse_qsl

import anyio
import stripe
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from stripe import params as typed
from stripe._request_options import RequestOptions
from stripe._stripe_object import UntypedStripeObject
from typing_extensions import is_typeddict

from bastion.platform.redaction import luhn_valid
from bastion.vault.domain import brand_for
from tests.support.providers import vendor_specs

FIXTURES = vendor_specs() / "stripe" / "fixtures3.json"
# The sandbox's test cards (docs/payments.md): the code, decline code and message Stripe gives each.
DECLINES = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "4000000000000119": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}
CHALLENGED = frozenset({"4000002760003184", "4000000000003220"})
_EXPIRED = DECLINES["4000000000000069"]
# Stripe's envelopes of a request it did not process: too many requests, or unavailable.
_REFUSALS = {
    429: {
        "error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many requests hit the API too quickly."}
    },
    503: {"error": {"type": "api_error", "message": "Stripe is temporarily unavailable."}},
}
_CANCELABLE = frozenset({"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action"})
_CLOSED_DISPUTES = frozenset({"won", "lost", "warning_closed"})
# Names the typed parameters use without importing them where they are declared.
_NAMES = {"StripeContext": stripe.StripeContext, "Mapping": Mapping}
_NOT_PARAMETERS = frozenset(RequestOptions.__annotations__)
_SEARCH = re.compile(r"metadata\['([^']+)'\]:'([^']*)'")
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def fixtures() -> dict[str, Any] | None:
    """Stripe's example objects by resource name, or None when the vendor specs are absent."""
    if not FIXTURES.is_file():
        return None
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources


class Chaos(enum.Enum):
    # `status` (429 or 503) before anything is done: not processed.
    REFUSED = "refused"
    # Done, then 500, stored for the key as Stripe stores it: indeterminate to the caller.
    SERVER_ERROR = "server_error"
    # Done, answered after `delay_s`.
    SLOW = "slow"
    # Done, then the connection is dropped mid-answer.
    DROP = "drop"
    # The object made takes `status`, in the record and the answer.
    STATUS = "status"


@dataclass(frozen=True)
class Armed:
    chaos: Chaos
    path: str
    delay_s: float = 0.0
    # The HTTP status of REFUSED; the object's status of STATUS.
    status: int | str = ""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Account:
    """One secret key's Stripe account: what it holds, oldest first."""

    cards: dict[str, str] = field(default_factory=dict)  # PaymentMethod id -> card number
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    payment_intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    disputes: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Every request made with the account's key, as it arrived.
    received: list[Received] = field(default_factory=list)
    # Idempotency key -> the request's fingerprint, status and body.
    replies: dict[str, tuple[str, int, dict[str, Any]]] = field(default_factory=dict)


class StripeError(Exception):
    """An answer in Stripe's error envelope."""

    def __init__(
        self, status: int, kind: str, message: str, *, code: str | None = None, param: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": kind, "message": message, "code": code, "param": param, **extra}}


def _invalid(message: str, *, code: str | None, param: str | None = None, status: int = 400) -> StripeError:
    return StripeError(status, "invalid_request_error", message, code=code, param=param)


class StripeServer:
    def __init__(self, resources: dict[str, Any]) -> None:
        self._fixtures = resources
        self._lock = threading.Lock()
        self._accounts: dict[str, Account] = {}
        self._armed: list[Armed] = []
        # PaymentIntents younger than this are not found by search yet, as Stripe's index trails.
        self.search_lag_s = 0.0
        routes = [
            Route(
                "/v1/payment_methods",
                self._handler(typed.PaymentMethodCreateParams, self._create_payment_method),
                methods=["POST"],
            ),
            Route("/v1/payment_intents", self._handler(typed.PaymentIntentCreateParams, self._create_intent), methods=["POST"]),
            Route(
                "/v1/payment_intents/search",
                self._handler(typed.PaymentIntentSearchParams, self._search_intents),
                methods=["GET"],
            ),
            Route(
                "/v1/payment_intents/{id}",
                self._handler(typed.PaymentIntentRetrieveParams, self._retrieve_intent),
                methods=["GET"],
            ),
            Route(
                "/v1/payment_intents/{id}/capture",
                self._handler(typed.PaymentIntentCaptureParams, self._capture),
                methods=["POST"],
            ),
            Route(
                "/v1/payment_intents/{id}/cancel", self._handler(typed.PaymentIntentCancelParams, self._cancel), methods=["POST"]
            ),
            Route("/v1/refunds", self._handler(typed.RefundCreateParams, self._create_refund), methods=["POST"]),
            Route("/v1/refunds", self._handler(typed.RefundListParams, self._list_refunds), methods=["GET"]),
            Route("/v1/disputes/{id}", self._handler(typed.DisputeUpdateParams, self._update_dispute), methods=["POST"]),
            Route("/v1/disputes/{id}/close", self._handler(typed.DisputeCloseParams, self._close_dispute), methods=["POST"]),
        ]
        self.app = Starlette(routes=routes, exception_handlers={404: self._not_found, 405: self._not_found})

    # What tests drive and read.

    def account(self, secret_key: str) -> Account:
        with self._lock:
            return self._accounts.setdefault(secret_key, Account())

    def arm(self, chaos: Chaos, *, path: str, delay_s: float = 0.0, status: int | str = "") -> None:
        """`chaos` for the next request to `path`."""
        with self._lock:
            self._armed.append(Armed(chaos, path, delay_s, status))

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    def complete_challenge(self, secret_key: str, intent_id: str, *, succeeded: bool) -> dict[str, Any]:
        """The cardholder answers the 3-D Secure challenge of `intent_id`; the PaymentIntent after."""
        with self._lock:
            account = self._accounts[secret_key]
            intent = account.payment_intents[intent_id]
            if intent["status"] != "requires_action":
                raise ValueError(f"{intent_id} is {intent['status']}: no challenge is open")
            intent["next_action"] = None
            if succeeded:
                self._authorized(account, intent)
            else:
                error = {
                    "type": "invalid_request_error",
                    "code": "payment_intent_authentication_failure",
                    "message": "The provided PaymentMethod has failed authentication.",
                }
                self._failed(account, intent, error)
            return copy.deepcopy(intent)

    def open_dispute(
        self, secret_key: str, intent_id: str, *, reason: str = "fraudulent", status: str = "needs_response"
    ) -> dict[str, Any]:
        """The cardholder disputes the captured PaymentIntent `intent_id`; the dispute."""
        with self._lock:
            account = self._accounts[secret_key]
            intent = account.payment_intents[intent_id]
            now = int(time.time())
            dispute = self._fixture("dispute") | {
                "id": _id("dp"),
                "amount": intent["amount_received"],
                "currency": intent["currency"],
                "charge": intent["latest_charge"],
                "payment_intent": intent_id,
                "reason": reason,
                "status": status,
                "created": now,
                "metadata": {},
            }
            dispute["evidence_details"] = dispute["evidence_details"] | {"due_by": now + 7 * 86_400}
            account.disputes[dispute["id"]] = dispute
            self._event(account, "charge.dispute.created", dispute)
            return copy.deepcopy(dispute)

    def event(self, account: Account, event_type: str, changed: dict[str, Any]) -> dict[str, Any]:
        """An event about `changed` as Stripe sends it (not recorded)."""
        return self._fixture("event") | {
            "id": _id("evt"),
            "type": event_type,
            "created": int(time.time()),
            "livemode": False,
            "api_version": stripe.api_version,
            "data": {"object": copy.deepcopy(changed)},
            "request": {"id": None, "idempotency_key": None},
        }

    # The wire format.

    def _handler(
        self, parameters: type, action: Callable[[Request, Account, dict[str, Any]], tuple[int, dict[str, Any]]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            body = (await request.body()).decode()
            secret_key = request.headers.get("authorization", "").removeprefix("Bearer ")
            self.account(secret_key).received.append(Received(request.method, request.url.path, dict(request.headers), body))
            armed = self._take(request.url.path)
            if armed is not None and armed.chaos == Chaos.REFUSED:
                return _answer(int(armed.status), _REFUSALS[int(armed.status)])
            try:
                status, answer = self._decide(request, body, parameters, action, armed)
            except StripeError as error:
                return _answer(error.status, error.body)
            if armed is not None and armed.chaos == Chaos.SLOW:
                await anyio.sleep(armed.delay_s)
            if armed is not None and armed.chaos == Chaos.DROP:
                return _Dropped()
            return _answer(status, answer, request.headers.get("idempotency-key"))

        return handle

    def _take(self, path: str) -> Armed | None:
        with self._lock:
            for index, armed in enumerate(self._armed):
                if armed.path == path:
                    return self._armed.pop(index)
        return None

    def _decide(
        self,
        request: Request,
        body: str,
        parameters: type,
        action: Callable[[Request, Account, dict[str, Any]], tuple[int, dict[str, Any]]],
        armed: Armed | None,
    ) -> tuple[int, dict[str, Any]]:
        secret_key = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not re.fullmatch("sk_test_[A-Za-z0-9]+", secret_key):
            raise StripeError(401, "invalid_request_error", f"Invalid API Key provided: sk_test_****{secret_key[-4:]}")
        received = request.url.query if request.method == "GET" else body
        params = _decoded(received)
        _check(params, parameters)
        key = request.headers.get("idempotency-key")
        fingerprint = f"{request.method} {request.url.path} {body}"
        with self._lock:
            account = self._accounts.setdefault(secret_key, Account())
            if key is not None and key in account.replies:
                first, status, answer = account.replies[key]
                if first != fingerprint:
                    raise StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they were first "
                        f"used with. Try using a key other than '{key}'.",
                    )
                return status, copy.deepcopy(answer)
            try:
                status, done = action(request, account, params)
            except StripeError as error:
                if error.status == 400 and error.body["error"]["code"] != "payment_intent_unexpected_state":
                    raise  # a refused request leaves no result for its key, as at Stripe
                status, done = error.status, error.body
            if armed is not None and armed.chaos == Chaos.STATUS:
                done["status"] = str(armed.status)
            # What is answered is the object as it is now, not the record that changes after.
            answer = copy.deepcopy(done)
            if armed is not None and armed.chaos == Chaos.SERVER_ERROR:
                status, answer = 500, {"error": {"type": "api_error", "message": "An unknown error occurred."}}
            if key is not None and request.method == "POST":
                account.replies[key] = (fingerprint, status, answer)
            return status, copy.deepcopy(answer)

    async def _not_found(self, request: Request, error: Exception) -> Response:
        return _answer(
            404, _invalid(f"Unrecognized request URL ({request.method}: {request.url.path}).", code="resource_missing").body
        )

    # What each call does, on the account's record.

    def _create_payment_method(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        card = params.get("card", {})
        number = card.get("number", "")
        if params.get("type") != "card" or not number:
            raise _invalid("A card PaymentMethod needs card[number].", code="parameter_missing", param="card[number]")
        if not luhn_valid(number):
            raise StripeError(402, "card_error", "Your card number is incorrect.", code="incorrect_number", param="number")
        if not 1 <= int(card.get("exp_month", 0)) <= 12:
            raise StripeError(
                402, "card_error", "Your card's expiration month is invalid.", code="invalid_expiry_month", param="exp_month"
            )
        method = self._fixture("payment_method") | {
            "id": _id("pm"),
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
            "customer": None,
            "type": "card",
        }
        method["card"] = method["card"] | {
            "brand": brand_for(number).value,
            "last4": number[-4:],
            "exp_month": int(card["exp_month"]),
            "exp_year": int(card["exp_year"]),
            "fingerprint": hashlib.sha256(number.encode()).hexdigest()[:16],
        }
        account.cards[method["id"]] = number
        account.payment_methods[method["id"]] = method
        return 200, method

    def _create_intent(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        method_id = params.get("payment_method", "")
        if method_id not in account.payment_methods:
            raise _invalid(f"No such PaymentMethod: '{method_id}'", code="resource_missing", param="payment_method")
        amount = int(params["amount"])
        currency = params["currency"]
        if amount < 1 or not re.fullmatch("[a-z]{3}", currency):
            raise _invalid(
                "Invalid amount or currency (a positive integer; a lowercase ISO code).",
                code="parameter_invalid_integer",
                param="amount",
            )
        now = int(time.time())
        intent_id = _id("pi")
        intent = self._fixture("payment_intent") | {
            "id": intent_id,
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "currency": currency,
            "capture_method": params.get("capture_method", "automatic"),
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "created": now,
            "canceled_at": None,
            "cancellation_reason": None,
            "automatic_payment_methods": None,
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": params.get("metadata", {}),
            "next_action": None,
            "payment_method": method_id,
            "payment_method_options": params.get("payment_method_options", {}),
            "payment_method_types": ["card"],
            "processing": None,
            "shipping": None,
            "transfer_data": None,
            "status": "requires_confirmation",
        }
        account.payment_intents[intent_id] = intent
        if params.get("confirm") == "true":
            self._confirm(request, account, intent, params)
        if intent["status"] == "requires_payment_method":
            error = intent["last_payment_error"]
            raise StripeError(
                402,
                "card_error",
                error["message"],
                code=error["code"],
                decline_code=error["decline_code"],
                payment_intent=copy.deepcopy(intent),
                charge=intent["latest_charge"],
            )
        return 200, intent

    def _confirm(self, request: Request, account: Account, intent: dict[str, Any], params: dict[str, Any]) -> None:
        number = account.cards[intent["payment_method"]]
        card = account.payment_methods[intent["payment_method"]]["card"]
        asked = params.get("payment_method_options", {}).get("card", {}).get("request_three_d_secure")
        if number in CHALLENGED or asked == "challenge":
            intent["status"] = "requires_action"
            return_url = params.get("return_url")
            if return_url is None:
                intent["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
            else:
                page = f"{str(request.base_url).rstrip('/')}/3ds/{intent['id']}"
                intent["next_action"] = {"type": "redirect_to_url", "redirect_to_url": {"url": page, "return_url": return_url}}
            self._event(account, "payment_intent.requires_action", intent)
            return
        today = datetime.now(UTC)
        decline = _EXPIRED if (card["exp_year"], card["exp_month"]) < (today.year, today.month) else DECLINES.get(number)
        if decline is None:
            self._authorized(account, intent)
            return
        code, decline_code, message = decline
        self._failed(account, intent, {"type": "card_error", "code": code, "decline_code": decline_code, "message": message})

    def _authorized(self, account: Account, intent: dict[str, Any]) -> None:
        intent["latest_charge"] = _id("ch")
        if intent["capture_method"] == "manual":
            intent |= {"status": "requires_capture", "amount_capturable": intent["amount"]}
            self._event(account, "payment_intent.amount_capturable_updated", intent)
        else:
            intent |= {"status": "succeeded", "amount_received": intent["amount"]}
            self._event(account, "payment_intent.succeeded", intent)

    def _failed(self, account: Account, intent: dict[str, Any], error: dict[str, Any]) -> None:
        intent["latest_charge"] = _id("ch")
        intent |= {
            "status": "requires_payment_method",
            "last_payment_error": {"decline_code": None, **error, "charge": intent["latest_charge"]},
        }
        self._event(account, "payment_intent.payment_failed", intent)

    def _retrieve_intent(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return 200, self._intent(account, request)

    def _search_intents(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        query = _SEARCH.fullmatch(params["query"])
        if query is None:
            raise _invalid("This server searches metadata['key']:'value' alone.", code="parameter_invalid", param="query")
        name, value = query.groups()
        indexed_before = time.time() - self.search_lag_s
        found = [
            intent
            for intent in reversed(account.payment_intents.values())
            if intent["metadata"].get(name) == value and intent["created"] <= indexed_before
        ]
        limit = int(params.get("limit", 10))
        return 200, {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "data": found[:limit],
            "has_more": len(found) > limit,
            "next_page": None,
        }

    def _capture(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self._intent(account, request)
        if intent["status"] != "requires_capture":
            raise _unexpected(intent, "captured", "requires_capture")
        amount = int(params.get("amount_to_capture", intent["amount_capturable"]))
        if not 0 < amount <= intent["amount_capturable"]:
            raise _invalid(
                "The amount to capture must be positive and at most the amount capturable.",
                code="amount_too_large",
                param="amount_to_capture",
            )
        intent |= {"status": "succeeded", "amount_received": amount, "amount_capturable": 0}
        self._event(account, "payment_intent.succeeded", intent)
        return 200, intent

    def _cancel(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = self._intent(account, request)
        if intent["status"] not in _CANCELABLE:
            raise _unexpected(intent, "canceled", ", ".join(sorted(_CANCELABLE)))
        intent |= {
            "status": "canceled",
            "amount_capturable": 0,
            "canceled_at": int(time.time()),
            "cancellation_reason": params.get("cancellation_reason"),
            "next_action": None,
        }
        self._event(account, "payment_intent.canceled", intent)
        return 200, intent

    def _create_refund(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        intent = account.payment_intents.get(params.get("payment_intent", ""))
        if intent is None:
            raise _invalid(
                f"No such payment_intent: '{params.get('payment_intent')}'", code="resource_missing", param="payment_intent"
            )
        if intent["status"] != "succeeded":
            raise _unexpected(intent, "refunded", "succeeded")
        refunded = sum(
            refund["amount"]
            for refund in account.refunds.values()
            if refund["payment_intent"] == intent["id"] and refund["status"] != "failed"
        )
        left = intent["amount_received"] - refunded
        amount = int(params.get("amount", left))
        if not 0 < amount <= left:
            raise _invalid(
                f"Refund amount ({amount}) is greater than the unrefunded amount on the charge ({left}).",
                code="amount_too_large",
                param="amount",
            )
        refund = self._fixture("refund") | {
            "id": _id("re"),
            "amount": amount,
            "charge": intent["latest_charge"],
            "created": int(time.time()),
            "currency": intent["currency"],
            "metadata": params.get("metadata", {}),
            "payment_intent": intent["id"],
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        account.refunds[refund["id"]] = refund
        self._event(account, "refund.created", refund)
        return 200, refund

    def _list_refunds(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        listed = [
            refund
            for refund in reversed(account.refunds.values())
            if refund["payment_intent"] == params.get("payment_intent", refund["payment_intent"])
        ]
        after = params.get("starting_after")
        if after is not None:
            listed = listed[[refund["id"] for refund in listed].index(after) + 1 :]
        limit = int(params.get("limit", 10))
        return 200, {"object": "list", "url": "/v1/refunds", "data": listed[:limit], "has_more": len(listed) > limit}

    def _update_dispute(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        dispute = self._dispute(account, request)
        dispute["evidence"] = dispute["evidence"] | params.get("evidence", {})
        if params.get("submit") == "true":
            dispute["status"] = "under_review"
            dispute["evidence_details"] = dispute["evidence_details"] | {
                "has_evidence": True,
                "submission_count": dispute["evidence_details"]["submission_count"] + 1,
            }
        self._event(account, "charge.dispute.updated", dispute)
        return 200, dispute

    def _close_dispute(self, request: Request, account: Account, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        dispute = self._dispute(account, request)
        dispute["status"] = "lost"
        self._event(account, "charge.dispute.closed", dispute)
        return 200, dispute

    def _intent(self, account: Account, request: Request) -> dict[str, Any]:
        intent = account.payment_intents.get(request.path_params["id"])
        if intent is None:
            raise _invalid(
                f"No such payment_intent: '{request.path_params['id']}'", code="resource_missing", param="intent", status=404
            )
        return intent

    def _dispute(self, account: Account, request: Request) -> dict[str, Any]:
        dispute = account.disputes.get(request.path_params["id"])
        if dispute is None:
            raise _invalid(
                f"No such dispute: '{request.path_params['id']}'", code="resource_missing", param="dispute", status=404
            )
        if dispute["status"] in _CLOSED_DISPUTES:
            raise _invalid("This dispute is already closed.", code=None)
        return dispute

    def _event(self, account: Account, event_type: str, changed: dict[str, Any]) -> None:
        account.events.append(self.event(account, event_type, changed))

    def _fixture(self, name: str) -> dict[str, Any]:
        example: dict[str, Any] = copy.deepcopy(self._fixtures[name])
        return example


def signature_header(payload: bytes, secret: str, *, timestamp: int | None = None) -> str:
    """`Stripe-Signature` as Stripe writes it: `t=<unix seconds>,v1=<HMAC-SHA256 of "t.payload" under the endpoint's secret>`."""
    moment = int(time.time()) if timestamp is None else timestamp
    mac = HMAC(secret.encode(), SHA256())
    mac.update(f"{moment}.".encode() + payload)
    signature = mac.finalize().hex()
    return f"t={moment},v1={signature}"


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(18).replace('-', 'a').replace('_', 'b')}"


def _unexpected(intent: dict[str, Any], verb: str, statuses: str) -> StripeError:
    return _invalid(
        f"This PaymentIntent could not be {verb} because it has a status of {intent['status']}. "
        f"Only a PaymentIntent with one of the following statuses may be {verb}: {statuses}.",
        code="payment_intent_unexpected_state",
        param=None,
    )


def _answer(status: int, body: dict[str, Any], idempotency_key: str | None = None) -> Response:
    headers = {"request-id": _id("req"), "stripe-version": stripe.api_version}
    if idempotency_key is not None:
        headers["idempotency-key"] = idempotency_key
    return Response(json.dumps(body), status_code=status, media_type="application/json", headers=headers)


class _Dropped(Response):
    """An answer cut off after its first byte: the client sees the connection dropped."""

    def __init__(self) -> None:
        super().__init__()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": False})


# Form bodies and queries, as Stripe reads them.


def _decoded(form: str) -> dict[str, Any]:
    """`a[b][0]=x&c=y` as {"a": {"b": {"0": "x"}}, "c": "y"}; a key both a value and a hash is refused."""
    decoded: dict[str, Any] = {}
    for key, value in parse_qsl(form, keep_blank_values=True):
        parts = _KEY.fullmatch(key)
        if parts is None:
            raise _invalid(f"Invalid parameter name: {key}", code="parameter_invalid", param=key)
        path = [parts.group(1), *re.findall(r"\[([^\[\]]*)\]", parts.group(2))]
        node = decoded
        for depth, name in enumerate(path[:-1]):
            child = node.setdefault(name, {})
            if not isinstance(child, dict):
                raise _invalid(
                    f"Invalid hash: {_param(path[: depth + 1])}", code="parameter_invalid", param=_param(path[: depth + 1])
                )
            node = child
        if path[-1] in node:
            raise _invalid(f"Received the parameter {key} twice.", code="parameter_invalid", param=key)
        node[path[-1]] = value
    return decoded


def _param(path: list[str]) -> str:
    return path[0] + "".join(f"[{name}]" for name in path[1:])


def _check(params: dict[str, Any], parameters: type) -> None:
    """`params` checked against the package's TypedDict of the call: every key known, every
    required one there, every value of its type (400s worded as Stripe's)."""
    hints = {
        name: hint for name, hint in typing.get_type_hints(parameters, localns=_NAMES).items() if name not in _NOT_PARAMETERS
    }
    _check_hash(params, hints, parameters.__required_keys__ - _NOT_PARAMETERS, [])  # type: ignore[attr-defined]


def _check_hash(value: dict[str, Any], hints: dict[str, Any], required: frozenset[str], path: list[str]) -> None:
    for name, item in value.items():
        if name not in hints:
            raise _invalid(
                f"Received unknown parameter: {_param([*path, name])}", code="parameter_unknown", param=_param([*path, name])
            )
        _check_value(item, hints[name], [*path, name])
    for name in sorted(required - set(value)):
        raise _invalid(f"Missing required param: {_param([*path, name])}.", code="parameter_missing", param=_param([*path, name]))


def _check_value(value: Any, hint: Any, path: list[str]) -> None:
    if get_origin(hint) is Union:
        _check_alternatives(value, get_args(hint), path)
    elif _is_hash(hint):
        _check_container(value, hint, path)
    else:
        _check_leaf(value, hint, _param(path))


def _check_alternatives(value: Any, alternatives: tuple[Any, ...], path: list[str]) -> None:
    """`value` as one of `alternatives` of its shape (a hash or a value); else the first refusal."""
    refusals = []
    for alternative in alternatives:
        if _is_hash(alternative) != isinstance(value, dict):
            continue
        try:
            _check_value(value, alternative, path)
        except StripeError as refusal:
            refusals.append(refusal)
        else:
            return
    raise (
        refusals[0] if refusals else _invalid(f"Invalid value for {_param(path)}.", code="parameter_invalid", param=_param(path))
    )


def _check_container(value: Any, hint: Any, path: list[str]) -> None:
    param = _param(path)
    if not isinstance(value, dict):
        raise _invalid(f"Invalid hash: {param}", code="parameter_invalid", param=param)
    if is_typeddict(hint):
        _check_hash(value, typing.get_type_hints(hint, localns=_NAMES), hint.__required_keys__, path)
    elif get_origin(hint) is list:
        if not all(index.isdigit() for index in value):
            raise _invalid(f"Invalid array: {param}", code="parameter_invalid", param=param)
        for index, item in value.items():
            _check_value(item, get_args(hint)[0], [*path, index])
    elif not all(isinstance(item, str) for item in value.values()):
        # Metadata: a hash of strings.
        raise _invalid(f"Invalid hash: {param}", code="parameter_invalid", param=param)


def _check_leaf(value: Any, hint: Any, param: str) -> None:
    if not isinstance(value, str):
        raise _invalid(f"Invalid value for {param}: a hash where a value was expected.", code="parameter_invalid", param=param)
    if get_origin(hint) is Literal and value not in get_args(hint):
        raise _invalid(f"Invalid {param}: must be one of {', '.join(get_args(hint))}", code="parameter_invalid", param=param)
    if hint is int and not re.fullmatch("-?[0-9]+", value):
        raise _invalid(f"Invalid integer: {value}", code="parameter_invalid_integer", param=param)
    if hint is bool and value not in ("true", "false"):
        raise _invalid(f"Invalid boolean: {value}", code="parameter_invalid", param=param)
    if get_origin(hint) is not Literal and hint not in (int, bool, str, Any):
        raise _invalid(f"This server does not read {param} ({hint}).", code="parameter_invalid", param=param)


def _is_hash(hint: Any) -> bool:
    return is_typeddict(hint) or get_origin(hint) in (list, dict, UntypedStripeObject)
