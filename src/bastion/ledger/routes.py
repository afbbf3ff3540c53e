"""HTTP routes of the ledger: thin, they only translate."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from bastion.api.context import Authorized, Command, RequestContext
from bastion.ledger import accounts, entries, holds, posting
from bastion.ledger.domain import AccountType
from bastion.ledger.errors import ReferenceInFlight
from bastion.ledger.resources import (
    Account,
    AccountList,
    AccountTypeName,
    Balance,
    Batch,
    BatchResult,
    Entry,
    EntryList,
    Statement,
)
from bastion.ledger.schemas import UNIX_SECONDS_MAX, AccountCreate, BatchCreate, EntryCreate, EntryReverse, HoldPost
from bastion.platform.db import UnitOfWork
from bastion.platform.http.pagination import page_request, reject_unknown_query_params
from bastion.platform.http.responses import JsonResponse
from bastion.platform.http.schemas import Currency, documented, id_schema
from bastion.platform.pagination import LIMIT_DEFAULT, LIMIT_MAX, PageRequest

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])

AccountId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("la"), description="A ledger account id, la_...")]
EntryId = Annotated[str, Path(max_length=64, json_schema_extra=id_schema("le"), description="A ledger entry id, le_...")]
Reader = Annotated[RequestContext, Depends(Authorized("ledger:read"))]
Writer = Annotated[RequestContext, Depends(Authorized("ledger:write"))]
KnownQuery = Depends(reject_unknown_query_params)


async def _posting(context: RequestContext, operation: Command) -> JsonResponse:
    """Run a posting command; when a concurrent request wrote the same reference first,
    run it once more, so that it answers with that entry."""
    try:
        return await context.command(operation)
    except ReferenceInFlight:
        return await context.command(operation)


@router.post("/accounts", summary="Create a ledger account", responses=documented(Account, writes=True))
async def create_account(body: AccountCreate, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: accounts.create_account(uow, body.draft()))


@router.get("/accounts", summary="List ledger accounts, newest first", responses=documented(AccountList))
async def list_accounts(
    context: Reader,
    page: Annotated[PageRequest, Depends(page_request("la"))],
    code: Annotated[str | None, Query(max_length=64, description="Only the account with this code")] = None,
    currency: Annotated[Currency | None, Query(description="Only accounts in this currency")] = None,
    type: Annotated[  # noqa: A002  (the API's name for the account type)
        AccountTypeName | None, Query(description="Only accounts of this type")
    ] = None,
) -> JsonResponse:
    async with context.read() as uow:
        listed = await accounts.list_accounts(
            uow, page, code=code, currency=currency, type_=AccountType(type) if type is not None else None
        )
    return JsonResponse(listed)


@router.get("/accounts/{account_id}", summary="Retrieve a ledger account", responses=documented(Account))
async def retrieve_account(account_id: AccountId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await accounts.retrieve_account(uow, account_id))


@router.post("/accounts/{account_id}/close", summary="Close a ledger account", responses=documented(Account, writes=True))
async def close_account(account_id: AccountId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: accounts.close_account(uow, account_id))


@router.get(
    "/accounts/{account_id}/balance",
    summary="An account's balance, now or at a past moment",
    responses=documented(Balance),
    dependencies=[KnownQuery],
)
async def retrieve_balance(
    account_id: AccountId,
    context: Reader,
    as_of: Annotated[
        int | None, Query(ge=0, le=UNIX_SECONDS_MAX, description="Unix seconds: the balance at the end of that second")
    ] = None,
) -> JsonResponse:
    moment = datetime.fromtimestamp(as_of, UTC) if as_of is not None else None
    async with context.read() as uow:
        return JsonResponse(await accounts.balance(uow, account_id, moment))


@router.get(
    "/accounts/{account_id}/statement",
    summary="Posted entries on an account, oldest first, with the running balance",
    responses=documented(Statement),
    dependencies=[KnownQuery],
)
async def retrieve_statement(
    account_id: AccountId,
    context: Reader,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description=f"1 to {LIMIT_MAX} lines per page")] = LIMIT_DEFAULT,
    starting_after: Annotated[
        str | None,
        Query(max_length=64, json_schema_extra=id_schema("le"), description="The entry of the previous page's last line"),
    ] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await accounts.statement(uow, account_id, limit=limit, starting_after=starting_after))


@router.post("/entries", summary="Post an entry (or a hold)", responses=documented(Entry, writes=True))
async def create_entry(body: EntryCreate, context: Writer) -> JsonResponse:
    return await _posting(context, lambda uow: posting.post_entry(uow, body.draft()))


@router.post("/entries/batch", summary="Post up to 8,000 entries atomically", responses=documented(Batch, writes=True))
async def create_entries(body: BatchCreate, context: Writer) -> JsonResponse:
    async def post(uow: UnitOfWork) -> Batch:
        results = await posting.post_entries(uow, [entry.draft() for entry in body.entries])
        return Batch(
            object="ledger.batch",
            results=[BatchResult(index=item.index, result=item.result, id=item.entry_id) for item in results],
        )

    return await _posting(context, post)


@router.get("/entries", summary="List ledger entries, newest first", responses=documented(EntryList))
async def list_entries(
    context: Reader,
    page: Annotated[PageRequest, Depends(page_request("le"))],
    account: Annotated[
        str | None, Query(max_length=64, json_schema_extra=id_schema("la"), description="Only entries that post to this account")
    ] = None,
) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await entries.list_entries(uow, page, account))


@router.get("/entries/{entry_id}", summary="Retrieve a ledger entry", responses=documented(Entry))
async def retrieve_entry(entry_id: EntryId, context: Reader) -> JsonResponse:
    async with context.read() as uow:
        return JsonResponse(await entries.retrieve_entry(uow, entry_id))


@router.post("/entries/{entry_id}/post", summary="Post a hold, in full or in part", responses=documented(Entry, writes=True))
async def post_hold(entry_id: EntryId, body: HoldPost, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: holds.post_pending(uow, entry_id, body.amount_minor))


@router.post("/entries/{entry_id}/void", summary="Void a hold", responses=documented(Entry, writes=True))
async def void_hold(entry_id: EntryId, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: holds.void_pending(uow, entry_id))


@router.post("/entries/{entry_id}/reverse", summary="Reverse an entry", responses=documented(Entry, writes=True))
async def reverse_entry(entry_id: EntryId, body: EntryReverse, context: Writer) -> JsonResponse:
    return await context.command(lambda uow: holds.reverse_entry(uow, entry_id, body.description))
