"""Use cases of the payments context. Each takes the caller's unit of work and never commits."""

from collections.abc import Sequence

from bastion import audit, customers, events
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import BastionError, ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.metadata import merge_metadata
from bastion.payments import repository
from bastion.payments.errors import TokenAlreadyUsed
from bastion.payments.events import PAYMENT_METHOD_CREATED
from bastion.payments.resources import PaymentMethod, PaymentMethodCard, PaymentMethodList
from bastion.payments.schemas import PaymentMethodCreate
from bastion.platform.db import AnyRow, Tenant, UnitOfWork
from bastion.platform.idempotency import Outcome, Phases, State
from bastion.platform.pagination import PageRequest, check_cursors
from bastion.platform.vault_client import VaultClient


def payment_method_resource(row: AnyRow) -> PaymentMethod:
    return PaymentMethod(
        id=row["id"],
        object="payment_method",
        type=row["type"],
        card=PaymentMethodCard(
            brand=row["card_brand"],
            last4=row["card_last4"],
            exp_month=row["card_exp_month"],
            exp_year=row["card_exp_year"],
            funding=row["card_funding"],
            fingerprint=row["card_fingerprint"],
        ),
        customer=row["customer_id"],
        metadata=row["metadata"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


def payment_method_list(rows: Sequence[AnyRow], has_more: bool) -> PaymentMethodList:
    return PaymentMethodList(
        object="list", url="/v1/payment_methods", data=[payment_method_resource(row) for row in rows], has_more=has_more
    )


CREATE_PAYMENT_METHOD = "payment_method.create"


async def start_payment_method(uow: UnitOfWork, request: PaymentMethodCreate) -> State:
    """Phase 1 of creating a payment method: the checks, and the id the vault binds the token's card to."""
    if request.customer is not None:
        await customers.live_customer(uow, request.customer, param="customer")
    if not is_id(request.card.token, "tok"):
        raise ResourceMissing(f"No such token: '{request.card.token}'", param="card[token]")
    return {
        "token": request.card.token,
        "payment_method_id": new_id("pm"),
        "customer": request.customer,
        "metadata": merge_metadata({}, request.metadata),
    }


def payment_method_phases(vault: VaultClient) -> Phases:
    """Exchange a single-use card token for a reusable payment method, in phases: the vault
    is called between two transactions. The card itself stays in the vault."""

    async def exchange(tenant: Tenant, state: State) -> Outcome:
        # Safe to repeat: the vault binds a token to one payment method id and answers the same again.
        try:
            return await vault.exchange_token(tenant, state["token"], state["payment_method_id"])
        except BastionError as error:
            if error.param == "token":
                error.param = "card[token]"
            raise

    async def record(uow: UnitOfWork, state: State, card: Outcome) -> PaymentMethod:
        # The vault names the payment method the token is bound to: ours, or that of an earlier
        # exchange whose command never finished (then this one takes its place). If that
        # payment method exists, or a concurrent exchange is creating it, the insert does nothing.
        row = await repository.insert_payment_method(
            uow.connection,
            uow.tenant,
            payment_method_id=card["payment_method_id"],
            customer_id=state["customer"],
            card=card,
            signals=card["signals"],
            metadata=state["metadata"],
            created_at=uow.now(),
        )
        if row is None:
            raise TokenAlreadyUsed("This token has already been used; tokens are single-use.", param="card[token]")
        resource = payment_method_resource(row)
        audit.record(
            uow,
            action_type="payment_method.create",
            resource_type="payment_method",
            resource_id=row["id"],
            before=None,
            after=resource,
        )
        events.emit(uow, PAYMENT_METHOD_CREATED, resource)
        return resource

    return Phases(name=CREATE_PAYMENT_METHOD, call=exchange, finish=record)


async def payment_method_row(uow: UnitOfWork, payment_method_id: str, *, param: str = "id") -> AnyRow:
    """The tenant's payment method, or `resource_missing` naming `param`."""
    row = (
        await repository.get_payment_method(uow.connection, uow.tenant, payment_method_id)
        if is_id(payment_method_id, "pm")
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such payment method: '{payment_method_id}'", param=param)
    return row


async def retrieve_payment_method(uow: UnitOfWork, payment_method_id: str) -> PaymentMethod:
    return payment_method_resource(await payment_method_row(uow, payment_method_id))


async def list_payment_methods(uow: UnitOfWork, request: PageRequest, customer_id: str | None) -> PaymentMethodList:
    if customer_id is not None:
        # An unknown customer (another merchant's included) is named, as Stripe does, not an empty list.
        await customers.live_customer(uow, customer_id, param="customer")
    await check_cursors(
        request,
        prefix="pm",
        noun="payment method",
        exists=lambda cursor: repository.payment_method_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_payment_methods(uow.connection, uow.tenant, request, customer_id)
    return payment_method_list(page.rows, page.has_more)
