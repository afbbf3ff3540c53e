"""Use cases of the connectors context. Each takes the caller's unit of work and never commits."""

from collections.abc import Collection, Mapping
from typing import Literal

from bastion import audit, events
from bastion.connectors import repository
from bastion.connectors.domain import (
    ACCOUNTS_PER_MODE_MAX,
    KINDS,
    Capabilities,
    ConnectorKind,
    OpenedAccount,
    checked_credentials,
    default_base_url,
    kind_for_mode,
    masked_credentials,
    origin_problem,
)
from bastion.connectors.errors import ConnectorAccountDisabled, ConnectorAccountsFull
from bastion.connectors.events import CONNECTOR_ACCOUNT_CREATED, CONNECTOR_ACCOUNT_DISABLED, CONNECTOR_ACCOUNT_UPDATED
from bastion.connectors.resources import (
    Connector,
    ConnectorAccount,
    ConnectorAccountList,
    ConnectorCapabilities,
    ConnectorList,
)
from bastion.connectors.schemas import ConnectorAccountCreate, ConnectorAccountUpdate
from bastion.connectors.secrets import CredentialsSealer, SealedCredentials
from bastion.kernel.clock import unix_seconds, unix_seconds_or_none
from bastion.kernel.errors import ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.kernel.metadata import merge_metadata
from bastion.platform.db import AnyRow, Connection, Tenant, UnitOfWork
from bastion.platform.http.outbound import DestinationPolicy, DestinationRefused, check_url
from bastion.platform.pagination import PageRequest, check_cursors

PREFIX = "ca"


def _capabilities(capabilities: Capabilities) -> ConnectorCapabilities:
    return ConnectorCapabilities(
        currencies=None if capabilities.currencies is None else sorted(capabilities.currencies),
        brands=sorted(capabilities.brands),
        manual_capture=capabilities.manual_capture,
        partial_capture=capabilities.partial_capture,
        partial_refunds=capabilities.partial_refunds,
        multiple_refunds=capabilities.multiple_refunds,
        three_d_secure=capabilities.three_d_secure,
        notifications=capabilities.notifications,
    )


def connector_resource(kind: ConnectorKind, *, livemode: bool, available: bool, sandbox_url: str) -> Connector:
    named: tuple[tuple[Literal["test", "live"], bool], ...] = (("test", False), ("live", True))
    modes = [mode for mode, live in named if live in kind.modes]
    fields = kind.credential_fields(livemode)
    return Connector(
        id=kind.name,
        object="connector",
        name=kind.display_name,
        available=available,
        modes=modes,
        capabilities=_capabilities(kind.capabilities),
        credentials=[field.name for field in fields],
        base_url=default_base_url(kind, livemode, {field.name: f"{{{field.name}}}" for field in fields}, sandbox_url),
    )


def list_connectors(livemode: bool, *, available: Collection[str], sandbox_url: str) -> ConnectorList:
    """The feature matrix: every kind Bastion knows, `available` when its connector is wired."""
    return ConnectorList(
        object="list",
        url="/v1/connectors",
        data=[
            connector_resource(kind, livemode=livemode, available=kind.name in available, sandbox_url=sandbox_url)
            for kind in KINDS.values()
        ],
        has_more=False,
    )


def account_resource(row: AnyRow) -> ConnectorAccount:
    return ConnectorAccount(
        id=row["id"],
        object="connector_account",
        connector=row["connector"],
        label=row["label"],
        credentials=row["credentials_masked"],
        base_url=row["base_url"],
        metadata=row["metadata"],
        status="disabled" if row["disabled"] else "enabled",
        disabled_at=unix_seconds_or_none(row["disabled_at"]),
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


def _base_url(url: str, uow: UnitOfWork) -> str:
    # Test mode also takes loopback over http: a local server that speaks the processor's
    # protocol (DESIGN.md 8); live mode public https only, through the SSRF guard's rules.
    checked = check_url(url, DestinationPolicy(allow_loopback_http=not uow.tenant.livemode), param="base_url")
    if (problem := origin_problem(checked)) is not None:
        raise DestinationRefused(f"Invalid base_url: {problem}.", param="base_url")
    return checked.removesuffix("/")


def _audit(uow: UnitOfWork, action: str, account_id: str, *, before: ConnectorAccount | None, after: ConnectorAccount) -> None:
    # The resources hold the credentials masked, never whole.
    audit.record(
        uow,
        action_type=f"connector_account.{action}",
        resource_type="connector_account",
        resource_id=account_id,
        before=before,
        after=after,
    )


async def _account(uow: UnitOfWork, account_id: str, *, for_update: bool = False, param: str = "id") -> AnyRow:
    row = (
        await repository.get_account(uow.connection, uow.tenant, account_id, for_update=for_update)
        if is_id(account_id, PREFIX)
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such connector account: '{account_id}'", param=param)
    return row


async def enabled_account(uow: UnitOfWork, account_id: str, *, param: str) -> AnyRow:
    """The merchant's account of this mode named for a payment, refused if disabled."""
    row = await _account(uow, account_id, param=param)
    if row["disabled"]:
        raise ConnectorAccountDisabled(f"The connector account {account_id} is disabled: it takes no new payments.", param=param)
    return row


async def oldest_enabled_account(uow: UnitOfWork) -> AnyRow | None:
    """The account a payment goes through when nothing else decides (docs/routing.md)."""
    return await repository.oldest_enabled(uow.connection, uow.tenant)


async def open_account(uow: UnitOfWork, sealer: CredentialsSealer, account_id: str) -> OpenedAccount:
    """The account with its credentials opened, for its connector; a disabled one too, since
    its payments are still captured, refunded and synced."""
    row = await _account(uow, account_id)
    sealed = SealedCredentials(row["credentials_sealed"], row["data_key_sealed"], row["algorithm"], row["key_purpose"])
    return OpenedAccount(
        id=row["id"],
        connector=row["connector"],
        tenant=uow.tenant,
        credentials=sealer.open(row["id"], sealed),
        base_url=row["base_url"],
    )


async def account_owner(connection: Connection, account_id: str) -> tuple[Tenant, str] | None:
    """Whose account this is (its merchant and mode) and its connector, for a notification that
    names it and carries no API key; None for no such account."""
    row = await repository.account_owner(connection, account_id) if is_id(account_id, PREFIX) else None
    return None if row is None else (Tenant(row["merchant_id"], row["livemode"]), row["connector"])


async def create_account(
    uow: UnitOfWork, request: ConnectorAccountCreate, sealer: CredentialsSealer, *, sandbox_url: str
) -> ConnectorAccount:
    livemode = uow.tenant.livemode
    kind = kind_for_mode(request.connector, livemode)
    credentials = checked_credentials(kind, livemode, request.credentials.model_dump(exclude_unset=True))
    if request.base_url is not None:
        base_url = _base_url(request.base_url, uow)
    else:
        base_url = default_base_url(kind, livemode, credentials, sandbox_url)
    if await repository.count_enabled(uow.connection, uow.tenant) >= ACCOUNTS_PER_MODE_MAX:
        raise ConnectorAccountsFull(
            f"A merchant has at most {ACCOUNTS_PER_MODE_MAX} enabled connector accounts in each mode: disable one first.",
            param="connector",
        )
    account_id = new_id(PREFIX)
    row = await repository.insert_account(
        uow.connection,
        uow.tenant,
        account_id=account_id,
        connector=kind.name,
        label=request.label,
        metadata=merge_metadata({}, request.metadata),
        base_url=base_url,
        credentials_masked=masked_credentials(kind, livemode, credentials),
        sealed=sealer.seal(account_id, credentials),
        created_at=uow.now(),
    )
    resource = account_resource(row)
    _audit(uow, "create", account_id, before=None, after=resource)
    events.emit(uow, CONNECTOR_ACCOUNT_CREATED, resource)
    return resource


async def retrieve_account(uow: UnitOfWork, account_id: str) -> ConnectorAccount:
    return account_resource(await _account(uow, account_id))


async def update_account(uow: UnitOfWork, account_id: str, request: ConnectorAccountUpdate) -> ConnectorAccount:
    current = await _account(uow, account_id, for_update=True)
    sent = request.model_fields_set
    row = await repository.update_account(
        uow.connection,
        uow.tenant,
        account_id,
        label=request.label if "label" in sent else current["label"],
        metadata=merge_metadata(current["metadata"], request.metadata) if "metadata" in sent else current["metadata"],
        updated_at=uow.now(),
    )
    before, after = account_resource(current), account_resource(row)
    _audit(uow, "update", account_id, before=before, after=after)
    # Read as plain mappings: the changed fields are named at run time.
    old: Mapping[str, object] = before
    new: Mapping[str, object] = after
    previous = {name: old[name] for name in ("label", "metadata") if old[name] != new[name]}
    events.emit(uow, CONNECTOR_ACCOUNT_UPDATED, after, previous_attributes=previous)
    return after


async def disable_account(uow: UnitOfWork, account_id: str) -> ConnectorAccount:
    """The account takes no payment any more; it stays readable. Disabling it again changes nothing."""
    current = await _account(uow, account_id, for_update=True)
    if current["disabled"]:
        return account_resource(current)
    row = await repository.disable_account(uow.connection, uow.tenant, account_id, uow.now())
    before, after = account_resource(current), account_resource(row)
    _audit(uow, "disable", account_id, before=before, after=after)
    events.emit(uow, CONNECTOR_ACCOUNT_DISABLED, after)
    return after


async def enabled_accounts(uow: UnitOfWork, account_ids: Collection[str]) -> frozenset[str]:
    """Those of `account_ids` that are the merchant's enabled accounts in this mode: the ones
    routing may name and send payments to (docs/routing.md)."""
    return frozenset(await repository.enabled_among(uow.connection, uow.tenant, sorted(set(account_ids))))


async def list_accounts(uow: UnitOfWork, request: PageRequest) -> ConnectorAccountList:
    await check_cursors(
        request,
        prefix=PREFIX,
        noun="connector account",
        exists=lambda cursor: repository.account_exists(uow.connection, uow.tenant, cursor),
    )
    page = await repository.page_accounts(uow.connection, uow.tenant, request)
    return ConnectorAccountList(
        object="list",
        url="/v1/connector_accounts",
        data=[account_resource(row) for row in page.rows],
        has_more=page.has_more,
    )
