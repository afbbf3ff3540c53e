"""`bastion payments check`: the payments' books against the ledger, as the owner."""

import dataclasses
import json
from typing import Annotated

import typer

from bastion.cli.common import fail, run_with_owner_database
from bastion.payments.check import Disagreement, PaymentsSummary, check_payments
from bastion.platform.db import Database

payments_app = typer.Typer(help="Check the payments' books.", no_args_is_help=True)


@payments_app.command("check")
def payments_check(as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False) -> None:
    """Prove that every intent, charge and refund agrees with the others and with the ledger, and
    that the journal balances; exit 1 naming the first object that disagrees (reads only)."""

    async def work(database: Database) -> Disagreement | PaymentsSummary:
        # One snapshot: payments committed while the check runs cannot look like faults.
        async with database.connection() as connection, connection.transaction(isolation="repeatable_read", readonly=True):
            return await check_payments(connection, database.clock.now())

    result = run_with_owner_database(work)
    ok = isinstance(result, PaymentsSummary)
    if as_json:
        typer.echo(json.dumps({"ok": ok, **dataclasses.asdict(result)}))
        if not ok:
            raise typer.Exit(code=1)
        return
    if isinstance(result, Disagreement):
        raise fail(f"payments check failed: {result.subject}: {result.message}")
    typer.echo(
        f"payments consistent: intents {result.intents}, charges {result.charges}, refunds {result.refunds}, "
        f"disputes {result.disputes}, settlements {result.settlements}, merchant books {result.books}, "
        f"journal entries {result.journal_entries}"
    )
