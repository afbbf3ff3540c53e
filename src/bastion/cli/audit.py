"""`bastion audit`."""

import dataclasses
import json
from typing import Annotated

import typer

from bastion import bootstrap
from bastion.audit import FileCheckpointLog, VerifyReport, verify_chain
from bastion.cli.common import fail, run_with_owner_database
from bastion.platform.db import Database
from bastion.platform.settings import Settings

audit_app = typer.Typer(help="Check the audit trail.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False) -> None:
    """Recompute the audit hash chain, check every signed checkpoint and the external checkpoint log (reads only)."""
    settings = Settings.from_env()

    async def work(database: Database) -> VerifyReport:
        return await verify_chain(database, bootstrap.keyring(settings), FileCheckpointLog(settings.audit_checkpoint_log))

    report = run_with_owner_database(work, settings)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report)))
        if not report.ok:
            raise typer.Exit(code=1)
        return
    if not report.ok:
        where = f" at seq {report.first_bad_seq}" if report.first_bad_seq is not None else ""
        raise fail(f"audit chain broken{where}: {report.reason}")
    typer.echo(f"audit chain intact: {report.rows_checked} rows, {report.checkpoints_checked} checkpoints")
