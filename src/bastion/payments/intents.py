"""PaymentIntents: create, retrieve, list and update in one transaction each; confirm, capture
and cancel as commands in phases (ADR 10), because they call the connector. Each state change
writes its charge, its ledger postings (`books.py`), its audit row and its events in the
transaction that makes it (docs/payments.md)."""

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bastion import audit, connectors, customers, events, risk, routing
from bastion.connectors import KINDS
from bastion.kernel.clock import unix_seconds, unix_seconds_or_none
from bastion.kernel.errors import CardError, InvariantViolated, ProcessorUnavailable
from bastion.kernel.ids import new_id
from bastion.kernel.metadata import merge_metadata
from bastion.kernel.money import Money
from bastion.payments import books, repository, reviews
from bastion.payments.charges import charge_resource, charge_row, intent_row, write_charge
from bastion.payments.connectors import Answer, AttemptResult, Authorization, Connector
from bastion.payments.directory import ConnectorDirectory
from bastion.payments.domain import (
    FINAL_STATUSES,
    IntentAction,
    IntentStatus,
    Needs,
    approved_outcome,
    blocked_outcome,
    capture_amount,
    card_error,
    check_action,
    declined_outcome,
    review_outcome,
    unknown_outcome,
    unmet_need,
)
from bastion.payments.errors import (
    ConnectorCapabilityUnsupported,
    ConnectorUnavailable,
    PaymentIntentInFlight,
    PaymentIntentUnexpectedState,
    ProcessingError,
)
from bastion.payments.events import (
    CHARGE_CAPTURED,
    CHARGE_FAILED,
    CHARGE_SUCCEEDED,
    PAYMENT_INTENT_AMOUNT_CAPTURABLE_UPDATED,
    PAYMENT_INTENT_CANCELED,
    PAYMENT_INTENT_CREATED,
    PAYMENT_INTENT_PAYMENT_FAILED,
    PAYMENT_INTENT_REQUIRES_ACTION,
    PAYMENT_INTENT_SUCCEEDED,
)
from bastion.payments.pricing import price_in
from bastion.payments.resources import CardErrorBody, CardErrorDetail, PaymentError, PaymentIntent, PaymentIntentList
from bastion.payments.schemas import (
    PaymentIntentCapture,
    PaymentIntentConfirm,
    PaymentIntentCreate,
    PaymentIntentUpdate,
)
from bastion.payments.service import payment_method_row
from bastion.platform.db import Actor, AnyRow, Database, Tenant, UnitOfWork
from bastion.platform.idempotency import RESUMED, Outcome, Phases, Reply, State
from bastion.platform.logging import get_logger, request_id_var
from bastion.platform.pagination import PageRequest, check_cursors
from bastion.platform.settings import SANDBOX_CONNECTOR

_log = get_logger("bastion.payments")

CONFIRM = "payment_intent.confirm"
CAPTURE = "payment_intent.capture"
CANCEL = "payment_intent.cancel"
SYNC = "payment_intent.sync"
_CARD_ERROR_STATUS = 402


def intent_resource(row: AnyRow) -> PaymentIntent:
    return PaymentIntent(
        id=row["id"],
        object="payment_intent",
        amount=row["amount"],
        amount_capturable=row["amount_capturable"],
        amount_received=row["amount_received"],
        currency=row["currency"],
        status=row["status"],
        capture_method=row["capture_method"],
        connector_account=row["connector_account_id"],
        customer=row["customer_id"],
        payment_method=row["payment_method_id"],
        latest_charge=row["latest_charge_id"],
        last_payment_error=row["last_payment_error"],
        next_action=row["next_action"],
        cancellation_reason=row["cancellation_reason"],
        canceled_at=unix_seconds_or_none(row["canceled_at"]),
        description=row["description"],
        statement_descriptor=row["statement_descriptor"],
        metadata=row["metadata"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


async def _write_intent(
    uow: UnitOfWork, before: AnyRow, changes: dict[str, Any], *, action: str, event_types: Sequence[str] = ()
) -> PaymentIntent:
    """The intent with `changes`, audited as `action` and announced by `event_types`."""
    values = {column: before[column] for column in repository.INTENT_COLUMNS} | changes | {"updated_at": uow.now()}
    row = await repository.update_intent(uow.connection, uow.tenant, before["id"], values)
    resource = intent_resource(row)
    audit.record(
        uow,
        action_type=action,
        resource_type="payment_intent",
        resource_id=row["id"],
        before=intent_resource(before),
        after=resource,
    )
    for event_type in event_types:
        events.emit(uow, event_type, resource)
    return resource


async def _payment_method(uow: UnitOfWork, payment_method_id: str, customer_id: str | None) -> AnyRow:
    row = await payment_method_row(uow, payment_method_id, param="payment_method")
    if row["customer_id"] is not None and row["customer_id"] != customer_id:
        raise PaymentIntentUnexpectedState(
            f"The payment method {payment_method_id} belongs to a customer, and this PaymentIntent is not that customer's: "
            "set customer to it.",
            param="payment_method",
        )
    return row


async def create_intent(uow: UnitOfWork, request: PaymentIntentCreate) -> PaymentIntent:
    if request.confirm:
        raise InvariantViolated("an intent created with confirm is started by start_create_and_confirm")
    return intent_resource((await _create(uow, request)).intent)


@dataclass(frozen=True, slots=True)
class _Created:
    """A new intent's row, with its customer's and payment method's as its creation read them."""

    intent: AnyRow
    customer: AnyRow | None
    method: AnyRow | None


async def _create(uow: UnitOfWork, request: PaymentIntentCreate) -> _Created:
    customer = None if request.customer is None else await customers.live_customer(uow, request.customer, param="customer")
    method = None if request.payment_method is None else await _payment_method(uow, request.payment_method, request.customer)
    if request.connector_account is not None:
        await connectors.enabled_account(uow, request.connector_account, param="connector_account")
    status = IntentStatus.REQUIRES_PAYMENT_METHOD if request.payment_method is None else IntentStatus.REQUIRES_CONFIRMATION
    row = await repository.insert_intent(
        uow.connection,
        uow.tenant,
        {
            "id": new_id("pi"),
            "status": status,
            "amount": request.amount,
            "currency": request.currency,
            "capture_method": request.capture_method,
            "customer_id": request.customer,
            "payment_method_id": request.payment_method,
            "description": request.description,
            "statement_descriptor": request.statement_descriptor,
            "metadata": merge_metadata({}, request.metadata),
            "connector_account_id": request.connector_account,
            "created_at": uow.now(),
        },
    )
    resource = intent_resource(row)
    audit.record(
        uow,
        action_type="payment_intent.create",
        resource_type="payment_intent",
        resource_id=row["id"],
        before=None,
        after=resource,
    )
    events.emit(uow, PAYMENT_INTENT_CREATED, resource)
    return _Created(row, customer, method)


async def retrieve_intent(uow: UnitOfWork, intent_id: str) -> PaymentIntent:
    return intent_resource(await intent_row(uow, intent_id))


def intent_list(rows: Sequence[AnyRow], has_more: bool) -> PaymentIntentList:
    return PaymentIntentList(
        object="list", url="/v1/payment_intents", data=[intent_resource(row) for row in rows], has_more=has_more
    )


async def list_intents(
    uow: UnitOfWork, request: PageRequest, *, customer_id: str | None, created_gte: int | None, created_lte: int | None
) -> PaymentIntentList:
    if customer_id is not None:
        await customers.live_customer(uow, customer_id, param="customer")
    await check_cursors(
        request,
        prefix="pi",
        noun="payment intent",
        exists=lambda cursor: repository.intent_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_intents(
        uow.connection, uow.tenant, request, customer_id=customer_id, created_gte=created_gte, created_lte=created_lte
    )
    return intent_list(page.rows, page.has_more)


_SET_BEFORE_AUTHORIZATION = ("amount", "currency", "payment_method", "capture_method")


async def update_intent(uow: UnitOfWork, intent_id: str, request: PaymentIntentUpdate) -> PaymentIntent:
    row = await intent_row(uow, intent_id, for_update=True)
    status = IntentStatus(row["status"])
    check_action(IntentAction.UPDATE, status)
    _not_in_flight(row)
    sent = request.model_fields_set
    if status in (IntentStatus.REQUIRES_CAPTURE, IntentStatus.REQUIRES_ACTION):
        for field in _SET_BEFORE_AUTHORIZATION:
            if field in sent:
                raise PaymentIntentUnexpectedState(
                    f"{field} cannot be changed once the PaymentIntent is sent for authorization (status {status}).",
                    param=field,
                )
    changes: dict[str, Any] = {"metadata": merge_metadata(row["metadata"], request.metadata)}
    for field in ("amount", "currency", "capture_method", "description", "statement_descriptor"):
        if field in sent and getattr(request, field) is not None:
            changes[field] = getattr(request, field)
    customer_id = row["customer_id"]
    if request.customer is not None:
        await customers.live_customer(uow, request.customer, param="customer")
        changes["customer_id"] = customer_id = request.customer
    if request.payment_method is not None:
        await _payment_method(uow, request.payment_method, customer_id)
        changes["payment_method_id"] = request.payment_method
        if status == IntentStatus.REQUIRES_PAYMENT_METHOD:
            changes["status"] = IntentStatus.REQUIRES_CONFIRMATION
    return await _write_intent(uow, row, changes, action="payment_intent.update")


def _not_in_flight(row: AnyRow) -> None:
    if row["command_in_flight"] is not None:
        raise PaymentIntentInFlight(
            f"This PaymentIntent is being changed by another request (a {row['command_in_flight']}); retry when it has finished.",
            param="id",
        )


# Confirm: start (charge pending, intent processing) / authorize at the connector / record the outcome.


async def start_confirm(uow: UnitOfWork, intent_id: str, request: PaymentIntentConfirm) -> State:
    row = await intent_row(uow, intent_id, for_update=True)
    return await _start_confirm(uow, row, request.payment_method, request.return_url)


async def start_create_and_confirm(uow: UnitOfWork, request: PaymentIntentCreate) -> State:
    if request.payment_method is None:
        raise _no_payment_method()
    created = await _create(uow, request)
    return await _start_confirm(uow, created.intent, None, request.return_url, created)


def _no_payment_method() -> PaymentIntentUnexpectedState:
    return PaymentIntentUnexpectedState(
        "You cannot confirm this PaymentIntent because it has no payment method: pass payment_method.", param="payment_method"
    )


def _return_to(return_url: str, intent_id: str) -> str:
    """The merchant's `return_url` with the intent's id in its query, as Stripe's redirect adds it."""
    parts = urlsplit(return_url)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("payment_intent", intent_id)]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _start_confirm(
    uow: UnitOfWork, row: AnyRow, payment_method_id: str | None, return_url: str | None, created: _Created | None = None
) -> State:
    """`created`: what the intent's creation has just read."""
    check_action(IntentAction.CONFIRM, IntentStatus(row["status"]))
    payment_method_id = payment_method_id or row["payment_method_id"]
    if payment_method_id is None:
        raise _no_payment_method()
    method = created.method if created is not None and created.method is not None else None
    if method is None or method["id"] != payment_method_id:
        method = await _payment_method(uow, payment_method_id, row["customer_id"])
    if created is not None:
        customer = created.customer
    elif row["customer_id"] is not None:
        customer = await customers.live_customer(uow, row["customer_id"], param="customer")
    else:
        customer = None
    attempts = await _route(uow, row, method)
    charge = await _insert_attempt(uow, row, payment_method_id, attempts[0])
    changes = {
        "status": IntentStatus.PROCESSING,
        "payment_method_id": payment_method_id,
        "latest_charge_id": charge["id"],
        "last_payment_error": None,
        "next_action": None,
    }
    # No `payment_intent.processing` nor `charge.pending` event: as Stripe's for cards, the answer
    # follows within the request, and its own events say what became of the attempt.
    await _write_intent(uow, row, changes, action="payment_intent.confirm")
    return {
        "intent": row["id"],
        "charge": charge["id"],
        "card": method["vault_card_id"],
        "amount": row["amount"],
        "currency": row["currency"],
        "capture": row["capture_method"] == "automatic",
        "return_url": return_url,
        "risk": _attempt(uow, row, charge["id"], method, customer).to_state(),
        # Where each attempt may go, in order, its charge's id decided now: a resumed confirm
        # goes on from the latest (docs/routing.md, Failover).
        "attempts": [
            {"charge": attempt.charge_id, "connector": attempt.connector, "connector_account": attempt.account_id}
            for attempt in attempts
        ],
    }


@dataclass(frozen=True, slots=True)
class _Attempt:
    """Where one attempt of a confirm goes and why."""

    charge_id: str
    connector: str
    account_id: str | None  # None: the sandbox acquirer
    routing: dict[str, Any]


async def _route(uow: UnitOfWork, intent: AnyRow, method: AnyRow) -> list[_Attempt]:
    """The attempts a confirm may make, in order: through the intent's pinned account alone;
    else as the merchant's live routing rules plan them (connectors lacking what the payment
    needs left out); else through the merchant's oldest enabled account; else, in test mode,
    the sandbox acquirer. A connector that lacks what the payment needs is refused before any
    attempt."""
    needs = Needs(intent["currency"], method["card_brand"], intent["capture_method"] == "manual")
    if intent["connector_account_id"] is not None:
        account = await connectors.enabled_account(uow, intent["connector_account_id"], param="connector_account")
        chosen = (account["connector"], account["id"], "pinned")
    elif routed := await _routed(uow, intent, method, needs):
        return routed
    elif (account := await connectors.oldest_enabled_account(uow)) is not None:
        chosen = (account["connector"], account["id"], "default")
    elif not uow.tenant.livemode:
        chosen = (SANDBOX_CONNECTOR, None, "sandbox")
    else:
        raise ConnectorUnavailable(
            "No connector account takes live-mode payments for this merchant: create one (POST /v1/connector_accounts).",
            param="connector_account",
        )
    connector, account_id, reason = chosen
    unmet = unmet_need(KINDS[connector].capabilities, needs)
    if unmet is not None:
        param, missing = unmet
        raise ConnectorCapabilityUnsupported(
            f"The {KINDS[connector].display_name} connector does not offer {missing}: choose another connector account.",
            param=param,
        )
    return [_Attempt(new_id("ch"), connector, account_id, {"attempt": 1, "reason": reason})]


async def _routed(uow: UnitOfWork, intent: AnyRow, method: AnyRow, needs: Needs) -> list[_Attempt]:
    """The attempts the live routing rules plan, each with the plan that made it; none without
    live rules, or when no planned connector offers what the payment needs."""
    payment = routing.RoutedPayment(
        payment_id=intent["id"],
        amount=intent["amount"],
        currency=intent["currency"],
        card_brand=method["card_brand"],
        card_country=await risk.card_country(uow, method["card_bin"]),
        capture_method=intent["capture_method"],
    )
    plan = await routing.plan(uow, payment)
    decided = {
        "attempt": 1,
        "reason": "routing_rules",
        "routing_rules": plan.ruleset_id,
        "rule": plan.rule_index,
        "strategy": plan.strategy,
        "inputs": plan.inputs,
    }
    attempts = []
    for account_id in plan.candidates:
        account = await connectors.enabled_account(uow, account_id, param="connector_account")
        if unmet_need(KINDS[account["connector"]].capabilities, needs) is None:
            attempts.append(_Attempt(new_id("ch"), account["connector"], account_id, decided))
    return attempts[: plan.max_attempts]


async def _insert_attempt(uow: UnitOfWork, intent: AnyRow, payment_method_id: str, attempt: _Attempt) -> AnyRow:
    charge = await repository.insert_charge(
        uow.connection,
        uow.tenant,
        {
            "id": attempt.charge_id,
            "payment_intent_id": intent["id"],
            "payment_method_id": payment_method_id,
            "amount": intent["amount"],
            "currency": intent["currency"],
            "connector": attempt.connector,
            "connector_account_id": attempt.account_id,
            "routing": attempt.routing,
            "created_at": uow.now(),
        },
    )
    audit.record(
        uow,
        action_type="charge.create",
        resource_type="charge",
        resource_id=charge["id"],
        before=None,
        after=charge_resource(charge),
    )
    return charge


def _attempt(uow: UnitOfWork, intent: AnyRow, charge_id: str, method: AnyRow, customer: AnyRow | None) -> risk.Attempt:
    """The attempt as the risk engine assesses it: no card data but the card's brand, funding,
    fingerprint and last four digits, and the signals its fields sent."""
    signals = method["signals"]
    return risk.Attempt(
        attempt_id=charge_id,
        payment_intent_id=intent["id"],
        amount=intent["amount"],
        currency=intent["currency"],
        card_brand=method["card_brand"],
        card_funding=method["card_funding"],
        card_fingerprint=method["card_fingerprint"],
        card_last4=method["card_last4"],
        card_bin=method["card_bin"],
        livemode=uow.tenant.livemode,
        customer_id=None if customer is None else customer["id"],
        customer_email=None if customer is None else customer["email"],
        customer_created=None if customer is None else unix_seconds(customer["created_at"]),
        ip_address=(signals.get("client") or {}).get("ip_address"),
        signals={key: signals[key] for key in ("device", "behaviour") if key in signals},
        terminal=risk.terminal_of(intent["metadata"]),
    )


def _card_error_reply(error: CardError, decline_code: str | None, charge_id: str, intent: PaymentIntent) -> Reply:
    detail = CardErrorDetail(
        type="card_error",
        code=error.code,
        message=error.message,
        param=None,
        request_id=request_id_var.get(),
        decline_code=decline_code,
        charge=charge_id,
        payment_intent=intent,
    )
    return Reply(_CARD_ERROR_STATUS, CardErrorBody(error=detail))


_BLOCKED_MESSAGE = "Your card was declined."


def confirm_phases(
    database: Database, connectors: ConnectorDirectory, assessor: risk.Assessor | None, velocity: risk.Velocity
) -> Phases:
    """`assessor` None: the risk engine is off (BASTION_RISK_ENGINE), every attempt goes on
    unassessed; `velocity`: where an attempt's outcome is counted."""

    async def authorize(tenant: Tenant, state: State) -> Outcome:
        # Before any connector call: an attempt the risk engine blocks never leaves Bastion.
        decision = None
        if assessor is not None:
            actor = Actor(id="risk", request_id=request_id_var.get())
            decision = await assessor.assess(tenant, actor, risk.Attempt.from_state(state["risk"]))
        assessed = {"risk": None if decision is None else decision.to_state()}
        if decision is not None and decision.action == risk.Action.BLOCK:
            blocked = Answer(AttemptResult.DECLINED, decline_code="fraudulent", message=_BLOCKED_MESSAGE)
            return blocked.to_outcome() | assessed | {"blocked_by_risk": True}
        actor = Actor(id="routing", request_id=request_id_var.get())
        attempts: list[dict[str, Any]] = state.get("attempts") or [
            {"charge": state["charge"], "connector": SANDBOX_CONNECTOR, "connector_account": None}
        ]
        # A resumed confirm goes on from the attempt the intent is at, which its earlier run may
        # have sent: whatever it answers now, that attempt does not fail over.
        maybe_sent = bool(state.get(RESUMED))
        index = 0
        if maybe_sent:
            async with database.unit_of_work(tenant, actor) as uow:
                latest = (await intent_row(uow, state["intent"]))["latest_charge_id"]
            index = next((at for at, attempt in enumerate(attempts) if attempt["charge"] == latest), 0)
        while True:
            attempt = attempts[index]
            connector = await connectors.of(tenant, attempt["connector_account"])
            request = Authorization(
                charge_id=attempt["charge"],
                card=state["card"],
                amount=state["amount"],
                currency=state["currency"],
                # An attempt sent to review is authorized only; capturing it waits for the review.
                capture=state["capture"] and (decision is None or decision.action != risk.Action.REVIEW),
                return_url=None if state["return_url"] is None else _return_to(state["return_url"], state["intent"]),
                three_d_secure_required=decision is not None and decision.action == risk.Action.REQUEST_3DS,
            )
            answer = await _authorize(connector, tenant, request)
            if answer.failover and maybe_sent:
                answer = Answer(
                    AttemptResult.UNKNOWN,
                    reference=answer.reference,
                    message="A resumed confirm: an earlier try may have reached the processor; a sync will tell.",
                )
            maybe_sent = False
            if not answer.failover or index + 1 == len(attempts):
                return answer.to_outcome() | assessed | {"charge": attempt["charge"]}
            async with database.unit_of_work(tenant, actor) as uow:
                moved = await _fail_over(uow, state, attempt["charge"], attempts[index + 1], answer)
            if not moved:
                # Settled meanwhile (a notification): the finish records nothing more.
                return answer.to_outcome() | assessed | {"charge": attempt["charge"]}
            index += 1

    return Phases(name=CONFIRM, call=authorize, finish=attempt_recorder(velocity), undo=_undo_confirm)


async def _authorize(connector: Connector, tenant: Tenant, request: Authorization) -> Answer:
    if request.three_d_secure_required and not connector.capabilities.three_d_secure:
        # Nothing sent: another connector that runs the challenge may take it.
        return Answer(
            AttemptResult.DECLINED,
            decline_code="authentication_required",
            message=f"The payment needs 3-D Secure, which the {connector.name} connector does not run.",
            failover=True,
        )
    return await connector.authorize(tenant, request)


async def _fail_over(uow: UnitOfWork, state: State, failed_id: str, following: dict[str, Any], answer: Answer) -> bool:
    """The failed attempt recorded as failed, and the next one started in its place, in one
    transaction; False if the failed one is settled already (nothing written)."""
    intent = await intent_row(uow, state["intent"], for_update=True)
    failed = await charge_row(uow, failed_id, for_update=True)
    if not awaiting_answer(intent, failed):
        return False
    error = card_error(answer.decline_code, answer.message)
    assessed = _risk_fields(await _decision_of(uow, {}, state["charge"]))
    await write_charge(
        uow,
        failed,
        {
            "status": "failed",
            "connector_reference": answer.reference,
            "outcome": declined_outcome(answer.decline_code) | assessed,
            "failure_code": error.code,
            "failure_message": error.message,
            "decline_code": answer.decline_code,
        },
        event_types=[CHARGE_FAILED],
    )
    await _count_for_routing(uow, failed, succeeded=False)
    decided = {
        "attempt": (failed["routing"] or {}).get("attempt", 1) + 1,
        "reason": "failover",
        "follows": failed_id,
        # What the failed attempt answered, by the connector's error table (docs/routing.md).
        "because": answer.decline_code or answer.message,
        "first": state["charge"],
    }
    attempt = _Attempt(following["charge"], following["connector"], following["connector_account"], decided)
    await _insert_attempt(uow, intent, failed["payment_method_id"], attempt)
    await _write_intent(uow, intent, {"latest_charge_id": attempt.charge_id}, action="payment_intent.failover")
    return True


async def _decision_of(uow: UnitOfWork, outcome: Outcome, charge_id: str) -> risk.Decision | None:
    """The risk engine's decision on the attempt: as the confirm's call carried it, else (an
    answer a sync or a notification settles later) as risk stored it; None if not assessed."""
    carried = outcome.get("risk")
    return risk.Decision.from_state(carried) if carried is not None else await risk.decision_of(uow, charge_id)


def _risk_fields(decision: risk.Decision | None) -> dict[str, Any]:
    """The charge outcome's risk fields; an outcome keeps its own `not_assessed` ones without a decision."""
    return {} if decision is None else decision.charge_outcome()


# An attempt waits for the connector's word in these: its answer is unknown, or the cardholder's
# 3-D Secure challenge is open.
_AWAITING = frozenset({IntentStatus.PROCESSING, IntentStatus.REQUIRES_ACTION})


async def _count_for_routing(uow: UnitOfWork, charge: AnyRow, *, succeeded: bool) -> None:
    """The attempt's outcome in its account's success rate (success-rate routing reads it)."""
    if charge["connector_account_id"] is not None:
        method = await payment_method_row(uow, charge["payment_method_id"], param="payment_method")
        await routing.record_outcome(
            uow, charge["connector_account_id"], currency=charge["currency"], card_brand=method["card_brand"], succeeded=succeeded
        )


def assessed_attempt(charge: AnyRow) -> str:
    """The attempt the risk engine assessed for `charge`: the confirm's first (its decision
    holds for every attempt a failover makes after it)."""
    return str((charge["routing"] or {}).get("first", charge["id"]))


def awaiting_answer(intent: AnyRow, charge: AnyRow) -> bool:
    """Whether `charge` is the intent's attempt still waiting for the connector's answer."""
    return charge["status"] == "pending" and intent["status"] in _AWAITING and intent["latest_charge_id"] == charge["id"]


def attempt_recorder(velocity: risk.Velocity) -> Callable[[UnitOfWork, State, Outcome], Awaitable[PaymentIntent | Reply]]:
    """`record_attempt`, with its outcome counted in `velocity`: a command's finish."""

    async def finish(uow: UnitOfWork, state: State, outcome: Outcome) -> PaymentIntent | Reply:
        return await record_attempt(uow, state, outcome, velocity)

    return finish


async def record_attempt(uow: UnitOfWork, state: State, outcome: Outcome, velocity: risk.Velocity) -> PaymentIntent | Reply:
    """What the connector answered to an authorization (the confirm's, a sync's or a
    notification's), recorded: once, whichever of them comes first; its outcome counted in
    `velocity`."""
    answer = Answer.from_outcome(outcome)
    intent = await intent_row(uow, state["intent"], for_update=True)
    charge = await charge_row(uow, outcome.get("charge") or state["charge"], for_update=True)
    if not awaiting_answer(intent, charge):
        # Settled by another sync or a notification meanwhile: recorded once.
        return intent_resource(intent)
    assessed_id = assessed_attempt(charge)
    amount = Money(state["amount"], state["currency"])
    reference: dict[str, Any] = {"connector_reference": answer.reference}
    if answer.result == AttemptResult.REQUIRES_ACTION:
        return await _record_challenge(uow, intent, charge, answer, state.get("return_url"))
    decision = await _decision_of(uow, outcome, assessed_id)
    assessed = _risk_fields(decision)
    if answer.result == AttemptResult.VOIDED:
        # An authorization the processor calls cancelled (Adyen's `Cancelled`) took no money: failed.
        answer = dataclasses.replace(answer, result=AttemptResult.FAILED)
    if answer.result in (AttemptResult.AUTHORIZED, AttemptResult.CAPTURED, AttemptResult.DECLINED, AttemptResult.FAILED):
        succeeded = answer.result in (AttemptResult.AUTHORIZED, AttemptResult.CAPTURED)
        await velocity.record_outcome(uow, assessed_id, succeeded=succeeded)
        await _count_for_routing(uow, charge, succeeded=succeeded)
    if answer.result == AttemptResult.AUTHORIZED:
        hold = await books.hold_authorization(uow, charge["id"], amount)
        in_review = decision is not None and decision.action == risk.Action.REVIEW
        changes: dict[str, Any] = {
            "status": "succeeded",
            "outcome": (review_outcome() if in_review else approved_outcome()) | assessed,
            "authorization_entry_id": hold,
        }
        await write_charge(uow, charge, reference | changes, event_types=[CHARGE_SUCCEEDED])
        if in_review and decision is not None:
            await reviews.open_review(uow, charge, decision)
        intent_changes = {
            "status": IntentStatus.REQUIRES_CAPTURE,
            "amount_capturable": amount.amount_minor,
            "next_action": None,
        }
        return await _write_intent(
            uow,
            intent,
            intent_changes,
            action="payment_intent.authorize",
            event_types=[PAYMENT_INTENT_AMOUNT_CAPTURABLE_UPDATED],
        )
    if answer.result == AttemptResult.CAPTURED:
        fee = (await price_in(uow, amount.currency))[0].fee(amount)
        await books.capture_at_once(uow, charge["id"], amount, fee)
        changes = {
            "status": "succeeded",
            "outcome": approved_outcome() | assessed,
            "captured": True,
            "amount_captured": amount.amount_minor,
            "fee": fee.amount_minor,
        }
        await write_charge(uow, charge, reference | changes, event_types=[CHARGE_SUCCEEDED, CHARGE_CAPTURED])
        intent_changes = {"status": IntentStatus.SUCCEEDED, "amount_received": amount.amount_minor, "next_action": None}
        return await _write_intent(
            uow, intent, intent_changes, action="payment_intent.capture", event_types=[PAYMENT_INTENT_SUCCEEDED]
        )
    if answer.result in (AttemptResult.DECLINED, AttemptResult.FAILED):
        blocked = bool(outcome.get("blocked_by_risk"))
        declined = blocked_outcome((assessed.get("rule") or {}).get("id")) if blocked else declined_outcome(answer.decline_code)
        return await _record_failure(uow, intent, charge, answer, declined | assessed)
    # Unknown: nothing is posted and the intent stays processing, until a sync settles it. An
    # answer for another amount or currency is held there too (quarantined), and said in the log.
    _log.warning("attempt_unknown", charge=charge["id"], reason=answer.message)
    unknown = unknown_outcome() | assessed
    if charge["outcome"] != unknown or charge["connector_reference"] != answer.reference:
        await write_charge(uow, charge, reference | {"outcome": unknown}, event_types=[])
    return intent_resource(intent)


async def _record_challenge(
    uow: UnitOfWork, intent: AnyRow, charge: AnyRow, answer: Answer, return_url: str | None
) -> PaymentIntent:
    """The issuer asks for a 3-D Secure challenge: the intent waits in `requires_action` with the
    page to send the customer to; the challenge's outcome comes as a notification (or a sync)."""
    if intent["status"] == IntentStatus.REQUIRES_ACTION:
        return intent_resource(intent)
    if charge["connector_reference"] != answer.reference:
        await write_charge(uow, charge, {"connector_reference": answer.reference}, event_types=[])
    next_action = {"type": "redirect_to_url", "redirect_to_url": {"url": answer.redirect_url, "return_url": return_url}}
    return await _write_intent(
        uow,
        intent,
        {"status": IntentStatus.REQUIRES_ACTION, "next_action": next_action},
        action="payment_intent.requires_action",
        event_types=[PAYMENT_INTENT_REQUIRES_ACTION],
    )


async def _record_failure(uow: UnitOfWork, intent: AnyRow, charge: AnyRow, answer: Answer, outcome: dict[str, Any]) -> Reply:
    error = card_error(answer.decline_code, answer.message)
    await write_charge(
        uow,
        charge,
        {
            "status": "failed",
            "connector_reference": answer.reference,
            "outcome": outcome,
            "failure_code": error.code,
            "failure_message": error.message,
            "decline_code": answer.decline_code,
        },
        event_types=[CHARGE_FAILED],
    )
    last_error = PaymentError(
        type="card_error",
        code=error.code,
        decline_code=answer.decline_code,
        message=error.message,
        charge=charge["id"],
        payment_method=charge["payment_method_id"],
    )
    resource = await _write_intent(
        uow,
        intent,
        {"status": IntentStatus.REQUIRES_PAYMENT_METHOD, "last_payment_error": last_error, "next_action": None},
        action="payment_intent.payment_failed",
        event_types=[PAYMENT_INTENT_PAYMENT_FAILED],
    )
    return _card_error_reply(error, answer.decline_code, charge["id"], resource)


async def _undo_confirm(uow: UnitOfWork, state: State) -> None:
    """A confirm whose finish was refused: its attempt fails as not sent, so that the intent is
    not left processing."""
    intent = await intent_row(uow, state["intent"], for_update=True)
    charge = await charge_row(uow, intent["latest_charge_id"] or state["charge"], for_update=True)
    if awaiting_answer(intent, charge):
        not_sent = Answer(AttemptResult.FAILED, message="The payment could not be completed.")
        assessed = _risk_fields(await _decision_of(uow, {}, assessed_attempt(charge)))
        await _record_failure(uow, intent, charge, not_sent, declined_outcome(None) | assessed)


# Sync: an attempt whose answer was unknown, asked about again (payments/jobs.py).


async def start_sync(uow: UnitOfWork, charge_id: str) -> State:
    # The intent's row first, then the charge's, in the order every other command locks them.
    intent = await intent_row(uow, (await charge_row(uow, charge_id))["payment_intent_id"], for_update=True)
    charge = await charge_row(uow, charge_id, for_update=True)
    if not awaiting_answer(intent, charge):
        raise PaymentIntentUnexpectedState(f"The charge {charge_id} is settled already: nothing to sync.", param="charge")
    return attempt_state(intent, charge)


def attempt_state(intent: AnyRow, charge: AnyRow) -> State:
    """What recording an answer about `charge`'s authorization needs (`record_attempt`)."""
    next_action = intent["next_action"] or {}
    return {
        "intent": intent["id"],
        "charge": charge["id"],
        "connector_account": charge["connector_account_id"],
        "amount": charge["amount"],
        "currency": charge["currency"],
        "capture": intent["capture_method"] == "automatic",
        "return_url": (next_action.get("redirect_to_url") or {}).get("return_url"),
    }


def sync_phases(connectors: ConnectorDirectory, velocity: risk.Velocity) -> Phases:
    async def sync(tenant: Tenant, state: State) -> Outcome:
        connector = await connectors.of(tenant, state.get("connector_account"))
        answer = await connector.sync(tenant, state["charge"], amount=state["amount"], currency=state["currency"])
        return answer.to_outcome()

    return Phases(name=SYNC, call=sync, finish=attempt_recorder(velocity))


# Capture and cancel: the intent is marked as changing at the processor until the command finishes.


async def start_capture(uow: UnitOfWork, intent_id: str, request: PaymentIntentCapture) -> State:
    row = await intent_row(uow, intent_id, for_update=True)
    _not_in_flight(row)
    check_action(IntentAction.CAPTURE, IntentStatus(row["status"]))
    amount = capture_amount(request.amount_to_capture, row["amount_capturable"])
    charge = await charge_row(uow, row["latest_charge_id"])
    kind = KINDS[charge["connector"]]
    if amount < row["amount_capturable"] and not kind.capabilities.partial_capture:
        raise ConnectorCapabilityUnsupported(
            f"The {kind.display_name} connector captures the whole authorization only: leave amount_to_capture out.",
            param="amount_to_capture",
        )
    await _write_intent(uow, row, {"command_in_flight": "capture"}, action="payment_intent.capture_started")
    return {
        "intent": row["id"],
        "charge": charge["id"],
        "connector_account": charge["connector_account_id"],
        "reference": charge["connector_reference"],
        "amount": amount,
    }


def capture_phases(connectors: ConnectorDirectory) -> Phases:
    async def capture(tenant: Tenant, state: State) -> Outcome:
        connector = await connectors.of(tenant, state.get("connector_account"))
        return (await connector.capture(tenant, state["charge"], state["reference"], state["amount"])).to_outcome()

    async def record(uow: UnitOfWork, state: State, outcome: Outcome) -> PaymentIntent:
        answer = Answer.from_outcome(outcome)
        if answer.result == AttemptResult.UNKNOWN:
            raise ProcessorUnavailable("The acquirer's answer to the capture is not known; it will be asked again.")
        if answer.result != AttemptResult.CAPTURED:
            raise ProcessingError(answer.message or "The acquirer refused the capture.")
        intent = await intent_row(uow, state["intent"], for_update=True)
        charge = await charge_row(uow, state["charge"], for_update=True)
        captured = Money(state["amount"], charge["currency"])
        fee = (await price_in(uow, captured.currency))[0].fee(captured)
        await books.capture_authorization(uow, charge["id"], charge["authorization_entry_id"], captured, fee)
        changes = {"captured": True, "amount_captured": captured.amount_minor, "fee": fee.amount_minor}
        await write_charge(uow, charge, changes, event_types=[CHARGE_CAPTURED])
        intent_changes = {
            "status": IntentStatus.SUCCEEDED,
            "amount_capturable": 0,
            "amount_received": captured.amount_minor,
            "command_in_flight": None,
        }
        return await _write_intent(
            uow, intent, intent_changes, action="payment_intent.capture", event_types=[PAYMENT_INTENT_SUCCEEDED]
        )

    return Phases(name=CAPTURE, call=capture, finish=record, undo=_clear_in_flight)


async def start_cancel(uow: UnitOfWork, intent_id: str, reason: str | None) -> State:
    row = await intent_row(uow, intent_id, for_update=True)
    _not_in_flight(row)
    check_action(IntentAction.CANCEL, IntentStatus(row["status"]))
    # An authorization, or an attempt waiting for its challenge, is voided at the acquirer.
    at_acquirer = row["status"] in (IntentStatus.REQUIRES_CAPTURE, IntentStatus.REQUIRES_ACTION)
    charge = await charge_row(uow, row["latest_charge_id"]) if at_acquirer else None
    await _write_intent(uow, row, {"command_in_flight": "cancel"}, action="payment_intent.cancel_started")
    return {
        "intent": row["id"],
        "reason": reason,
        # Before an attempt, nothing is there to void.
        "charge": None if charge is None else charge["id"],
        "connector_account": None if charge is None else charge["connector_account_id"],
        "reference": None if charge is None else charge["connector_reference"],
    }


def cancel_phases(connectors: ConnectorDirectory) -> Phases:
    async def void(tenant: Tenant, state: State) -> Outcome:
        if state["charge"] is None:
            return Answer(AttemptResult.VOIDED).to_outcome()
        connector = await connectors.of(tenant, state.get("connector_account"))
        return (await connector.void(tenant, state["charge"], state["reference"])).to_outcome()

    async def record(uow: UnitOfWork, state: State, outcome: Outcome) -> PaymentIntent:
        answer = Answer.from_outcome(outcome)
        if answer.result == AttemptResult.UNKNOWN:
            raise ProcessorUnavailable("The acquirer's answer to the void is not known; it will be asked again.")
        if answer.result != AttemptResult.VOIDED:
            raise ProcessingError(answer.message or "The acquirer refused the void.")
        intent = await intent_row(uow, state["intent"], for_update=True)
        if state["charge"] is not None and state["reason"] == "fraudulent":
            await risk.label_fraud(uow, state["charge"])
        if state["charge"] is not None:
            charge = await charge_row(uow, state["charge"], for_update=True)
            if charge["authorization_entry_id"] is not None:
                await books.release_authorization(uow, charge["authorization_entry_id"])
            elif charge["status"] == "pending":
                # Voided before the cardholder finished the challenge: this attempt ends with no authorization.
                await write_charge(uow, charge, _abandoned_attempt(), event_types=[CHARGE_FAILED])
        changes = {
            "status": IntentStatus.CANCELED,
            "amount_capturable": 0,
            "cancellation_reason": state["reason"],
            "canceled_at": uow.now(),
            "command_in_flight": None,
        }
        return await _write_intent(uow, intent, changes, action="payment_intent.cancel", event_types=[PAYMENT_INTENT_CANCELED])

    return Phases(name=CANCEL, call=void, finish=record, undo=_clear_in_flight)


def _abandoned_attempt() -> dict[str, Any]:
    error = card_error("authentication_failed", "The PaymentIntent was canceled before the customer authenticated.")
    return {
        "status": "failed",
        "outcome": declined_outcome("authentication_failed"),
        "failure_code": error.code,
        "failure_message": error.message,
        "decline_code": "authentication_failed",
    }


async def _clear_in_flight(uow: UnitOfWork, state: State) -> None:
    intent = await intent_row(uow, state["intent"], for_update=True)
    if intent["command_in_flight"] is not None and intent["status"] not in FINAL_STATUSES:
        await _write_intent(uow, intent, {"command_in_flight": None}, action="payment_intent.command_refused")
