"""`bastion ledger`."""

import dataclasses
import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from bastion import ledger
from bastion.cli.common import CLI_ACTOR, fail, print_resource, run_with_owner_database
from bastion.platform.db import Database, Tenant

ledger_app = typer.Typer(help="Inspect and check the ledger; create platform accounts.", no_args_is_help=True)


def _moment(text: str) -> datetime:
    """An ISO 8601 time with its offset, or Unix seconds."""
    try:
        moment = datetime.fromtimestamp(int(text), UTC) if text.isdigit() else datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise fail(f"--as-of {text!r} is neither an ISO 8601 time nor Unix seconds") from None
    if moment.tzinfo is None:
        raise fail(f"--as-of {text!r} has no timezone: add one, like 2026-11-23T12:00:00+00:00 or Z")
    return moment


@ledger_app.command("balance")
def ledger_balance(
    account: Annotated[str, typer.Argument(help="The ledger account id, la_... (any merchant's, or the platform's).")],
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="The balance at this moment: ISO 8601 with a timezone, or Unix seconds.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """An account's balance now or at a past moment: posted, pending, available and the four counters (reads only)."""
    moment = _moment(as_of) if as_of is not None else None

    async def work(database: Database) -> ledger.Balance:
        async with database.transaction() as connection:
            return await ledger.balance_any_tenant(connection, account, as_of=moment, moment=database.clock.now())

    print_resource(run_with_owner_database(work), as_json)


@ledger_app.command("check")
def ledger_check(as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Check every invariant of the ledger over the whole journal; exit 1 with the first violation (reads only)."""

    async def work(database: Database) -> ledger.Violation | ledger.JournalSummary:
        # One snapshot: entries committed while the check runs cannot look like faults.
        async with database.connection() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            return await ledger.check_journal(connection)

    result = run_with_owner_database(work)
    ok = isinstance(result, ledger.JournalSummary)
    if as_json:
        typer.echo(json.dumps({"ok": ok, **dataclasses.asdict(result)}))
        if not ok:
            raise typer.Exit(code=1)
        return
    if isinstance(result, ledger.Violation):
        raise fail(f"ledger check failed ({result.invariant}): {result.message}")
    typer.echo(f"ledger consistent: {result.entries} entries, {result.postings} postings, {result.accounts} accounts checked")


@ledger_app.command("create-account")
def ledger_create_account(
    currency: Annotated[str, typer.Option(help="ISO 4217 code, like USD.")],
    type_: Annotated[ledger.AccountType, typer.Option("--type", help="The account type.")],
    code: Annotated[str | None, typer.Option(help="A unique code for the account, like fees-usd.")] = None,
    stripes: Annotated[int, typer.Option(help="Balance rows, for an account many payments post to at once.")] = 1,
    live: Annotated[bool, typer.Option("--live", help="A live-mode account (default: test mode).")] = False,
) -> None:
    """Create a platform account (a fee account, say); prints its id."""
    draft = ledger.AccountDraft(currency=currency, type=type_, code=code, stripes=stripes)

    async def work(database: Database) -> ledger.Account:
        async with database.unit_of_work(Tenant(merchant_id=ledger.PLATFORM_MERCHANT_ID, livemode=live), CLI_ACTOR) as uow:
            return await ledger.create_account(uow, draft)

    created = run_with_owner_database(work)
    typer.echo(created["id"])
