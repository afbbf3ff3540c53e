"""A local Braintree gateway: the XML API as the `braintree` package speaks it, the package
being Braintree's description of its own wire format (issue 16).

- Requests: `X-ApiVersion` must be the package's (`426` otherwise), Basic authentication with
  the merchant's public and private keys (`401`), bodies in the package's XML, read with the
  package's own parser and held to the package's own parameter signatures (`Transaction.
  create_signature()`...: a key outside them is `403`, as Braintree's AuthorizationError says).
- Answers: transactions, search ids and results, disputes and `api-error-response`s (validation
  errors with Braintree's codes, declined transactions) in the gateway's dashed XML, which the
  package reads into its `Transaction`, `Dispute` and `ErrorResult`.
- Its own record of transactions and disputes, the judge of "no double charge": `sales(order_id)`.
  It keeps no card number: the BIN and last four, as Braintree shows them.
- Decisions by card number: Bastion's test cards (docs/payments.md), with Braintree's processor
  response codes; and Braintree's sandbox amounts: 2000.00 to 2999.99 declined with that code,
  3000.00 to 3000.99 `failed` (3000, processor network unavailable).
- Captures settle at once (as the sandbox's `testing.settle` would), unless the merchant was made
  with `settle_at_once=False`: Braintree refunds only settled transactions.
- Chaos (`fail_next`): answer a status without acting, act and answer late, act and drop the
  connection, act and answer (and record) other fields, such as an unknown status.
- Webhook notifications signed as the package signs them (`webhook_testing.sample_notification`:
  base64 of the XML, HMAC-SHA1 under the SHA-1 of the private key), about a recorded transaction
  or dispute, at any timestamp.
"""

import asyncio
import base64
import secrets
import string
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import braintree
from braintree.resource import Resource
from braintree.util.crypto import Crypto
from braintree.util.xml_util import XmlUtil
from starlette.requests import Request

from bastion.kernel.money import exponent
from bastion.platform.redaction import luhn_valid

API_VERSION = braintree.Configuration.api_version()
SEARCH_PAGE_SIZE = 50
# Days a merchant has to answer a dispute (Braintree's reply-by date).
DISPUTE_REPLY_DAYS = 7
APPROVED = ("1000", "Approved")
PROCESSED = ("1002", "Processed")
# Bastion's test cards (docs/payments.md) as Braintree's processor would decline them.
CARD_DECLINES: Mapping[str, tuple[str, str]] = {
    "4000000000000002": ("2046", "Declined"),
    "4000000000009995": ("2001", "Insufficient Funds"),
    "4000000000009987": ("2012", "Processor Declined - Possible Lost Card"),
    "4000000000000069": ("2004", "Expired Card"),
    "4000000000000127": ("2010", "Card Issuer Declined CVV"),
    "4000000000000119": ("2033", "Inconsistent Data"),
    # Cards whose issuer asks for 3-D Secure: without Braintree's client SDK, no authentication.
    "4000002760003184": ("2099", "Cardholder Authentication Required"),
    "4000000000003220": ("2099", "Cardholder Authentication Required"),
    # Braintree's own sandbox card that fails (its CreditCardNumbers.FailsSandboxVerification).
    "4000111111111115": ("2000", "Do Not Honor"),
}
_DECLINE_TEXTS = dict(CARD_DECLINES.values())
_DECLINED_AMOUNTS = (Decimal("2000.00"), Decimal("3000.00"))
_FAILED_AMOUNTS = (Decimal("3000.00"), Decimal("3001.00"))
NETWORK_UNAVAILABLE = ("3000", "Processor Network Unavailable - Try Again")
_CAPTURED = frozenset({"submitted_for_settlement", "settling", "settled"})
_VOIDABLE = frozenset({"authorized", "submitted_for_settlement", "settlement_pending"})
_REFUNDABLE = frozenset({"settled", "settling"})
_ID_ALPHABET = string.ascii_lowercase + string.digits
_KEY_ALPHABET = string.ascii_letters + string.digits
# Statuses a sale is answered with as an `api-error-response` (422), as Braintree does.
_UNSUCCESSFUL = frozenset({"processor_declined", "gateway_rejected", "failed"})


@dataclass(frozen=True)
class Merchant:
    merchant_id: str
    public_key: str
    private_key: str
    # The currency of its default merchant account: Braintree charges in that one.
    currency: str
    settle_at_once: bool = True

    @property
    def credentials(self) -> dict[str, str]:
        return {"merchant_id": self.merchant_id, "public_key": self.public_key, "private_key": self.private_key}

    @property
    def merchant_account_id(self) -> str:
        return f"{self.merchant_id}_{self.currency.lower()}"


@dataclass
class Transaction:
    id: str
    merchant_id: str
    type: str  # sale or credit
    status: str
    amount: Decimal
    currency: str
    order_id: str | None
    created_at: datetime
    bin: str
    last_4: str
    card_type: str
    expiration_month: str
    expiration_year: str
    processor_response: tuple[str, str]
    gateway_rejection_reason: str | None = None
    refunded_transaction_id: str | None = None
    refund_ids: list[str] = field(default_factory=list)
    history: list[tuple[str, datetime, Decimal]] = field(default_factory=list)

    def moved(self, status: str, amount: Decimal | None = None) -> None:
        self.status = status
        self.amount = self.amount if amount is None else amount
        self.history.append((status, datetime.now(UTC), self.amount))


@dataclass
class Dispute:
    id: str
    merchant_id: str
    transaction_id: str
    status: str
    amount: Decimal
    currency: str
    reason: str
    kind: str
    received_date: date
    reply_by_date: date | None


@dataclass
class Fault:
    """What the next request(s) of `operation` meet instead of an ordinary answer."""

    operation: str  # sale, find, capture, void, refund, search, dispute, accept, or any
    status: int | None = None  # answered at once, nothing done
    delay_s: float = 0.0  # done, then answered this late
    drop: bool = False  # done, then the connection is closed before any answer
    fields: Mapping[str, Any] | None = None  # done, then these fields of the transaction recorded and answered
    times: int = 1


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]


class _Refusal(Exception):
    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.body = body


@dataclass
class BraintreeGateway:
    """The gateway, an ASGI app; `serving(gateway, ...)` listens for it on 127.0.0.1."""

    merchants: dict[str, Merchant] = field(default_factory=dict)
    transactions: dict[str, Transaction] = field(default_factory=dict)
    disputes: dict[str, Dispute] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # What tests use.

    def merchant(self, currency: str = "USD", *, settle_at_once: bool = True) -> Merchant:
        made = Merchant(
            merchant_id=f"m{_token(_ID_ALPHABET, 15)}",
            public_key=_token(_KEY_ALPHABET, 16),
            private_key=_token(_KEY_ALPHABET, 32),
            currency=currency,
            settle_at_once=settle_at_once,
        )
        with self._lock:
            self.merchants[made.merchant_id] = made
        return made

    def fail_next(self, operation: str = "any", **fault: Any) -> None:
        with self._lock:
            self.faults.append(Fault(operation, **fault))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def sales(self, merchant: Merchant, order_id: str) -> list[Transaction]:
        return self._of(merchant, "sale", order_id)

    def credits(self, merchant: Merchant, order_id: str) -> list[Transaction]:
        return self._of(merchant, "credit", order_id)

    def settle(self, transaction_id: str) -> None:
        with self._lock:
            self.transactions[transaction_id].moved("settled")

    def open_dispute(self, transaction_id: str, *, reason: str = "fraud", kind: str = "chargeback") -> Dispute:
        with self._lock:
            disputed = self.transactions[transaction_id]
            today = datetime.now(UTC).date()
            made = Dispute(
                id=_token(_ID_ALPHABET, 16),
                merchant_id=disputed.merchant_id,
                transaction_id=disputed.id,
                status="open",
                amount=disputed.amount,
                currency=disputed.currency,
                reason=reason,
                kind=kind,
                received_date=today,
                reply_by_date=today + timedelta(days=DISPUTE_REPLY_DAYS),
            )
            self.disputes[made.id] = made
        return made

    def close_dispute(self, dispute_id: str, status: str) -> None:
        with self._lock:
            self.disputes[dispute_id].status = status
            self.disputes[dispute_id].reply_by_date = None

    def notification(
        self, merchant: Merchant, kind: str, subject_id: str, *, at: datetime | None = None, private_key: str | None = None
    ) -> bytes:
        """A webhook's form body (`bt_signature`, `bt_payload`) about the recorded transaction or
        dispute `subject_id`, signed at `at` with the merchant's keys (or `private_key`)."""
        with self._lock:
            if subject_id in self.disputes:
                subject = _element("dispute", self._dispute_fields(self.disputes[subject_id]))
            else:
                subject = _element("transaction", self._transaction_fields(self.transactions[subject_id]))
        timestamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        xml = (
            f'<notification><timestamp type="datetime">{timestamp}</timestamp><kind>{escape(kind)}</kind>'
            f"<subject>{subject}</subject></notification>"
        )
        return signed_notification(xml, merchant.public_key, private_key or merchant.private_key)

    # The wire.

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await Request(scope, receive).body()
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        method, path = scope["method"], scope["path"]
        with self._lock:
            self.received.append(Received(method, path, headers))
        operation, merchant_id, arguments = _route(method, path)
        fault = self._fault(operation)
        if fault is not None and fault.status is not None:
            await _answer(send, fault.status, "")
            return
        try:
            with self._lock:
                merchant = self._authenticated(merchant_id, headers)
                status, xml = self._act(operation, merchant, arguments, body, fault)
        except _Refusal as refusal:
            status, xml = refusal.status, refusal.body
        if fault is not None and fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault is not None and fault.drop:
            await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"100")]})
            raise ConnectionAbortedError("dropped by the test's fault")
        await _answer(send, status, xml)

    def _fault(self, operation: str) -> Fault | None:
        with self._lock:
            for index, fault in enumerate(self.faults):
                if fault.operation in (operation, "any"):
                    if fault.times <= 1:
                        del self.faults[index]
                    else:
                        self.faults[index] = replace(fault, times=fault.times - 1)
                    return fault
        return None

    def _authenticated(self, merchant_id: str | None, headers: Mapping[str, str]) -> Merchant:
        if headers.get("x-apiversion") != API_VERSION:
            raise _Refusal(426)
        merchant = self.merchants.get(merchant_id or "")
        expected = f"{merchant.public_key}:{merchant.private_key}".encode() if merchant is not None else None
        given = headers.get("authorization", "")
        if expected is None or given != f"Basic {base64.b64encode(expected).decode()}":
            raise _Refusal(401)
        assert merchant is not None
        return merchant

    def _act(self, operation: str, merchant: Merchant, arguments: list[str], body: bytes, fault: Fault | None) -> tuple[int, str]:
        fields = fault.fields if fault is not None else None
        if operation == "unknown":
            raise _Refusal(404)
        if operation == "sale":
            return self._sale(merchant, _params(body, "transaction"), fields)
        if operation == "search":
            return self._search(merchant, _params(body, "search"), ids_only=arguments[0] == "advanced_search_ids")
        if operation in ("dispute", "accept"):
            return self._dispute_action(merchant, operation, arguments[0])
        held = self.transactions.get(arguments[0])
        if held is None or held.merchant_id != merchant.merchant_id:
            raise _Refusal(404)
        return self._on_transaction(operation, merchant, held, body, fields)

    def _on_transaction(
        self, operation: str, merchant: Merchant, held: Transaction, body: bytes, fields: Mapping[str, Any] | None
    ) -> tuple[int, str]:
        if operation == "find":
            return 200, self._transaction_xml(held)
        if operation == "capture":
            return self._capture(merchant, held, _params(body, "transaction"), fields)
        if operation == "void":
            return self._void(held, fields)
        return self._refund(merchant, held, _params(body, "transaction"), fields)

    def _sale(self, merchant: Merchant, params: dict[str, Any], fields: Mapping[str, Any] | None) -> tuple[int, str]:
        _verify(params, braintree.Transaction.create_signature())
        amount = _amount(params.get("amount"), merchant.currency, required=True)
        assert amount is not None
        card = params.get("credit_card") or {}
        number = str(card.get("number", ""))
        month, year = str(card.get("expiration_month", "")), str(card.get("expiration_year", ""))
        if params.get("type") != "sale":
            raise _Refusal(422, _validation("91523", "type", "Transaction type is invalid."))
        if not (number.isdigit() and 12 <= len(number) <= 19 and luhn_valid(number)):
            raise _Refusal(422, _validation("81715", "number", "Credit card number is invalid.", ("transaction", "credit-card")))
        if not (month.isdigit() and 1 <= int(month) <= 12):
            raise _Refusal(
                422, _validation("81712", "expiration_month", "Expiration month is invalid.", ("transaction", "credit-card"))
            )
        if not (year.isdigit() and len(year) == 4):
            raise _Refusal(
                422, _validation("81713", "expiration_year", "Expiration year is invalid.", ("transaction", "credit-card"))
            )
        capture = (params.get("options") or {}).get("submit_for_settlement") is True
        status, response, rejection = _decision(number, month, year, amount, capture=capture)
        made = Transaction(
            id=_token(_ID_ALPHABET, 8),
            merchant_id=merchant.merchant_id,
            type="sale",
            status=status,
            amount=amount,
            currency=merchant.currency,
            order_id=params.get("order_id"),
            created_at=datetime.now(UTC),
            bin=number[:6],
            last_4=number[-4:],
            card_type=_card_type(number),
            expiration_month=month.zfill(2),
            expiration_year=year,
            processor_response=response,
            gateway_rejection_reason=rejection,
        )
        made.history.append((status, made.created_at, amount))
        _override(made, fields)
        self.transactions[made.id] = made
        answer = self._transaction_xml(made)
        if made.status in _UNSUCCESSFUL:
            return 422, _declined(made.processor_response[1], answer)
        if made.status == "submitted_for_settlement" and merchant.settle_at_once:
            made.moved("settled")
        return 201, answer

    def _capture(
        self, merchant: Merchant, held: Transaction, params: dict[str, Any], fields: Mapping[str, Any] | None
    ) -> tuple[int, str]:
        _verify(params, ["amount", *braintree.Transaction.submit_for_settlement_signature()])
        amount = _amount(params.get("amount"), held.currency, required=False) or held.amount
        if held.status != "authorized":
            raise _Refusal(422, _validation("91507", "base", "Cannot submit for settlement unless status is authorized."))
        if amount > held.amount:
            raise _Refusal(422, _validation("91522", "amount", "Settlement amount is too large."))
        held.moved("submitted_for_settlement", amount)
        _override(held, fields)
        answer = self._transaction_xml(held)
        if merchant.settle_at_once and held.status == "submitted_for_settlement":
            held.moved("settled")
        return 200, answer

    def _void(self, held: Transaction, fields: Mapping[str, Any] | None) -> tuple[int, str]:
        if held.status not in _VOIDABLE:
            raise _Refusal(
                422,
                _validation(
                    "91504",
                    "base",
                    "Transaction can only be voided if status is authorized, submitted_for_settlement, "
                    "or - for PayPal - settlement_pending.",
                ),
            )
        held.moved("voided")
        _override(held, fields)
        return 200, self._transaction_xml(held)

    def _refund(
        self, merchant: Merchant, held: Transaction, params: dict[str, Any], fields: Mapping[str, Any] | None
    ) -> tuple[int, str]:
        _verify(params, braintree.Transaction.refund_signature())
        if held.type != "sale" or held.status not in _REFUNDABLE:
            raise _Refusal(422, _validation("91506", "base", "Cannot refund transaction unless it is settled."))
        refunded = sum((self.transactions[credit].amount for credit in held.refund_ids), Decimal(0))
        remaining = held.amount - refunded
        amount = _amount(params.get("amount"), held.currency, required=False) or remaining
        if remaining <= 0:
            raise _Refusal(422, _validation("91512", "base", "Transaction has already been completely refunded."))
        if amount > remaining:
            raise _Refusal(422, _validation("91521", "amount", "Refund amount is too large."))
        credit = replace(
            held,
            id=_token(_ID_ALPHABET, 8),
            type="credit",
            status="submitted_for_settlement",
            amount=amount,
            order_id=params.get("order_id"),
            created_at=datetime.now(UTC),
            processor_response=PROCESSED,
            refunded_transaction_id=held.id,
            refund_ids=[],
            history=[("submitted_for_settlement", datetime.now(UTC), amount)],
        )
        _override(credit, fields)
        self.transactions[credit.id] = credit
        held.refund_ids.append(credit.id)
        answer = self._transaction_xml(credit)
        if merchant.settle_at_once and credit.status == "submitted_for_settlement":
            credit.moved("settled")
        return 201, answer

    def _search(self, merchant: Merchant, criteria: dict[str, Any], *, ids_only: bool) -> tuple[int, str]:
        known = {"order_id", "type", "ids"}
        if not set(criteria) <= known:
            raise _Refusal(
                422, _validation("91500", "base", f"This local gateway searches by {sorted(known)} only.", ("search",))
            )
        found = [
            transaction
            for transaction in self.transactions.values()
            if transaction.merchant_id == merchant.merchant_id
            and ("order_id" not in criteria or transaction.order_id == criteria["order_id"].get("is"))
            and ("type" not in criteria or transaction.type in criteria["type"])
            and ("ids" not in criteria or transaction.id in criteria["ids"])
        ]
        if ids_only:
            ids = "".join(_element("item", transaction.id) for transaction in found)
            return 200, (
                f'<search-results><page-size type="integer">{SEARCH_PAGE_SIZE}</page-size>'
                f'<ids type="array">{ids}</ids></search-results>'
            )
        items = "".join(self._transaction_xml(transaction) for transaction in found[:SEARCH_PAGE_SIZE])
        return 200, (
            f'<credit-card-transactions type="collection" current-page-number="1" page-size="{SEARCH_PAGE_SIZE}" '
            f'total-items="{len(found)}">{items}</credit-card-transactions>'
        )

    def _dispute_action(self, merchant: Merchant, operation: str, dispute_id: str) -> tuple[int, str]:
        disputed = self.disputes.get(dispute_id)
        if disputed is None or disputed.merchant_id != merchant.merchant_id:
            raise _Refusal(404)
        if operation == "dispute":
            return 200, _element("dispute", self._dispute_fields(disputed))
        if disputed.status != "open":
            raise _Refusal(
                422, _validation("95601", "status", "Disputes can only be accepted when they are in an Open state", ("dispute",))
            )
        disputed.status = "accepted"
        return 200, ""

    def _transaction_xml(self, transaction: Transaction) -> str:
        return _element("transaction", self._transaction_fields(transaction))

    def _transaction_fields(self, transaction: Transaction) -> dict[str, Any]:
        code, text = transaction.processor_response
        merchant = self.merchants[transaction.merchant_id]
        return {
            "id": transaction.id,
            "status": transaction.status,
            "type": transaction.type,
            "currency-iso-code": transaction.currency,
            "amount": _decimal_text(transaction.amount, transaction.currency),
            "merchant-account-id": merchant.merchant_account_id,
            "order-id": transaction.order_id,
            "created-at": transaction.created_at,
            "updated-at": transaction.history[-1][1],
            "credit-card": {
                "token": None,
                "bin": transaction.bin,
                "last-4": transaction.last_4,
                "card-type": transaction.card_type,
                "expiration-month": transaction.expiration_month,
                "expiration-year": transaction.expiration_year,
            },
            "processor-response-code": code,
            "processor-response-text": text,
            "processor-response-type": "approved" if code.startswith("1") else "soft_declined",
            "processor-authorization-code": _token(string.ascii_uppercase + string.digits, 6) if code.startswith("1") else None,
            "gateway-rejection-reason": transaction.gateway_rejection_reason,
            "refunded-transaction-id": transaction.refunded_transaction_id,
            "refund-ids": [("item", refund) for refund in transaction.refund_ids],
            "status-history": [
                (
                    "status-event",
                    {
                        "timestamp": at,
                        "status": status,
                        "amount": _decimal_text(amount, transaction.currency),
                        "transaction-source": "api",
                    },
                )
                for status, at, amount in transaction.history
            ],
        }

    def _dispute_fields(self, disputed: Dispute) -> dict[str, Any]:
        transaction = self.transactions[disputed.transaction_id]
        amount = _decimal_text(disputed.amount, disputed.currency)
        return {
            "id": disputed.id,
            "amount": amount,
            "amount-disputed": amount,
            "amount-won": "0.00",
            "case-number": f"CASE-{disputed.id[:6]}",
            "created-at": datetime.combine(disputed.received_date, datetime.min.time(), UTC),
            "currency-iso-code": disputed.currency,
            "kind": disputed.kind,
            "merchant-account-id": self.merchants[disputed.merchant_id].merchant_account_id,
            "reason": disputed.reason,
            "received-date": disputed.received_date,
            "reply-by-date": disputed.reply_by_date,
            "status": disputed.status,
            "transaction": {
                "id": transaction.id,
                "amount": _decimal_text(transaction.amount, transaction.currency),
                "created-at": transaction.created_at,
                "order-id": transaction.order_id,
            },
        }

    def _of(self, merchant: Merchant, kind: str, order_id: str) -> list[Transaction]:
        with self._lock:
            return [
                transaction
                for transaction in self.transactions.values()
                if transaction.merchant_id == merchant.merchant_id
                and transaction.type == kind
                and transaction.order_id == order_id
            ]


def signed_notification(xml: str, public_key: str, private_key: str) -> bytes:
    """A notification's form body, signed as `webhook_testing.sample_notification` signs one."""
    payload = base64.encodebytes(xml.encode()).decode("ascii")
    signature = f"{public_key}|{Crypto.sha1_hmac_hash(private_key, payload)}"
    return urlencode({"bt_signature": signature, "bt_payload": payload}).encode()


def _decision(number: str, month: str, year: str, amount: Decimal, *, capture: bool) -> tuple[str, tuple[str, str], str | None]:
    """The status, processor response and gateway rejection reason of a sale."""
    now = datetime.now(UTC)
    if number in CARD_DECLINES:
        return "processor_declined", CARD_DECLINES[number], None
    if (int(year), int(month)) < (now.year, now.month):
        return "processor_declined", CARD_DECLINES["4000000000000069"], None
    if _DECLINED_AMOUNTS[0] <= amount < _DECLINED_AMOUNTS[1]:
        code = str(int(amount))
        return "processor_declined", (code, _DECLINE_TEXTS.get(code, "Processor Declined")), None
    if _FAILED_AMOUNTS[0] <= amount < _FAILED_AMOUNTS[1]:
        return "failed", NETWORK_UNAVAILABLE, None
    return ("submitted_for_settlement" if capture else "authorized"), APPROVED, None


def _route(method: str, path: str) -> tuple[str, str | None, list[str]]:
    """The operation a request asks for, the merchant in its path and the rest of the path."""
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "merchants":
        return "unknown", None, []
    merchant_id, resource, rest = parts[1], parts[2], parts[3:]
    routes = {
        ("POST", "transactions", 0): "sale",
        ("GET", "transactions", 1): "find",
        ("PUT", "transactions", 2, "submit_for_settlement"): "capture",
        ("PUT", "transactions", 2, "void"): "void",
        ("POST", "transactions", 2, "refund"): "refund",
        ("GET", "disputes", 1): "dispute",
        ("PUT", "disputes", 2, "accept"): "accept",
    }
    if method == "POST" and resource == "transactions" and rest in (["advanced_search_ids"], ["advanced_search"]):
        return "search", merchant_id, rest
    key: tuple[Any, ...] = (method, resource, len(rest), *rest[1:])
    return routes.get(key, "unknown"), merchant_id, rest[:1]


def _params(body: bytes, root: str) -> dict[str, Any]:
    try:
        document = XmlUtil.dict_from_xml(body) if body.strip() else {}
    except ExpatError:
        raise _Refusal(400) from None
    params = document.get(root)
    return params if isinstance(params, dict) else {}


def _verify(params: dict[str, Any], signature: list[Any]) -> None:
    try:
        Resource.verify_keys(params, signature)
    except KeyError:
        raise _Refusal(403) from None


def _amount(value: Any, currency: str, *, required: bool) -> Decimal | None:
    if value in (None, ""):
        if required:
            raise _Refusal(422, _validation("81502", "amount", "Amount is required."))
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _Refusal(422, _validation("81503", "amount", "Amount is an invalid format.")) from None
    exponent_of = amount.as_tuple().exponent
    if not amount.is_finite() or (isinstance(exponent_of, int) and -exponent_of > exponent(currency)):
        raise _Refusal(422, _validation("81503", "amount", "Amount is an invalid format."))
    if amount <= 0:
        raise _Refusal(422, _validation("81531", "amount", "Amount must be greater than zero."))
    return amount


def _override(transaction: Transaction, fields: Mapping[str, Any] | None) -> None:
    for name, value in (fields or {}).items():
        setattr(transaction, name, value)


def _validation(code: str, attribute: str, message: str, on: tuple[str, ...] = ("transaction",)) -> str:
    """An `api-error-response` with one validation error on the object at the path `on`."""
    error = (
        f'<errors type="array"><error><code>{code}</code><attribute type="symbol">{attribute}</attribute>'
        f"<message>{escape(message)}</message></error></errors>"
    )
    for name in reversed(on):
        error = f"<{name}>{error}</{name}>"
    return _error_response(f'<errors type="array"/>{error}', message, "")


def _declined(message: str, transaction_xml: str) -> str:
    return _error_response('<errors type="array"/>', message, transaction_xml)


def _error_response(errors: str, message: str, transaction_xml: str) -> str:
    return (
        f"<api-error-response><errors>{errors}</errors><message>{escape(message)}</message>{transaction_xml}</api-error-response>"
    )


def _element(name: str, value: Any) -> str:
    """`value` as the gateway writes it: dashed names, `type` attributes, `nil` for none."""
    if value is None:
        return f'<{name} nil="true"/>'
    if isinstance(value, list):
        kind, inner = "array", "".join(_element(tag, item) for tag, item in value)
    elif isinstance(value, dict):
        kind, inner = None, "".join(_element(key, item) for key, item in value.items())
    else:
        kind, inner = _scalar(value)
    typed = f' type="{kind}"' if kind else ""
    return f"<{name}{typed}>{inner}</{name}>"


def _scalar(value: Any) -> tuple[str | None, str]:
    if isinstance(value, bool):
        return "boolean", str(value).lower()
    if isinstance(value, int):
        return "integer", str(value)
    if isinstance(value, datetime):
        return "datetime", value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return "date", value.isoformat()
    return None, escape(str(value))


def _decimal_text(amount: Decimal, currency: str) -> str:
    return str(amount.quantize(Decimal(1).scaleb(-exponent(currency))))


def _card_type(number: str) -> str:
    if number.startswith("4"):
        return "Visa"
    if number.startswith(("34", "37")):
        return "American Express"
    if number.startswith("5"):
        return "MasterCard"
    return "Discover"


def _token(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


async def _answer(send: Any, status: int, xml: str) -> None:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n{xml}'.encode() if xml else b""
    headers = [(b"content-type", b"application/xml; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
