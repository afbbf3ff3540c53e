"""`bastion vault` (run it, `scan-pan`), `bastion keys` and `bastion certs`."""

import asyncio
import dataclasses
import functools
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bastion import bootstrap
from bastion.cli.common import fail, run_with_owner_database
from bastion.platform.certs import CertPaths, uvicorn_ssl_options
from bastion.platform.db import Database
from bastion.platform.grant import Grant
from bastion.platform.logging import configure_logging
from bastion.platform.settings import Settings
from bastion.vault import rotation
from bastion.vault.scan import PanScan, scan_database, scan_logs
from bastion.vault.server import VAULT_WORKERS_MAX, VaultSockets, serve_vault, supervise

vault_app = typer.Typer(help="Run the card vault, or check that no card number escaped it.", invoke_without_command=True)
certs_app = typer.Typer(help="The mutual-TLS certificates between the API and the vault.", no_args_is_help=True)
keys_app = typer.Typer(help="The vault's key-encryption keys: status and rotation.", no_args_is_help=True)


@certs_app.command("init")
def certs_init() -> None:
    """Create the private CA and the vault's and API's certificates, if they do not exist (`migrate` does it too)."""
    settings = Settings.from_env()
    created = bootstrap.certs_create(settings)
    where = settings.data_dir / "certs"
    typer.echo(f"certificates created in {where}" if created else f"certificates already present in {where}")


@keys_app.command("status")
def keys_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Key versions, their state, and how many cards and CVCs each one wraps."""
    settings = Settings.from_env()

    async def work(database: Database) -> list[dict[str, Any]]:
        return await rotation.key_status(database)

    versions = run_with_owner_database(work, settings)
    if as_json:
        typer.echo(json.dumps(versions))
        return
    typer.echo(f"keyring: {settings.vault_keyring}")
    for version in versions:
        typer.echo(
            f"v{version['version']}  {version['state']:<8}  {version['provider']:<6}  "
            f"cards {version['cards']:>8}  cvcs {version['cvcs']:>6}"
        )


@keys_app.command("rotate")
def keys_rotate(
    batch_size: Annotated[
        int, typer.Option(min=1, max=rotation.BATCH_SIZE_MAX, help="Data keys re-wrapped per transaction.")
    ] = 500,
) -> None:
    """Make a new key version active and re-wrap every data key under it, in batches; run it again
    to finish a rotation that was interrupted. The old version is retired once nothing refers to it."""
    settings = Settings.from_env()
    keys = bootstrap.vault_keys(settings, pkcs11_pin=settings.pkcs11_pin)

    async def work(database: Database) -> rotation.RotationReport:
        total = await rotation.stale_count(database)
        with Progress(
            TextColumn("re-wrapping"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        ) as progress:
            # The total is known only after the new version is active; until then, what is stale now.
            task = progress.add_task("rotate", total=total or None)

            def advance(done: int) -> None:
                progress.update(task, advance=done, total=max(total, progress.tasks[0].completed + done))

            return await rotation.rotate(database, keys, batch_size=batch_size, on_batch=advance)

    try:
        report = run_with_owner_database(work, settings)
    finally:
        keys.close()
    resumed = " (finished an interrupted rotation)" if report.resumed else ""
    retired = ", ".join(f"v{version}" for version in report.retired_versions) or "none"
    typer.echo(f"active key version: v{report.active_version}{resumed}; re-wrapped {report.rewrapped}; retired: {retired}")


def _serve_vault_process(grant: Grant, sockets: VaultSockets, janitor: bool) -> None:
    """One vault process; `bastion vault --workers N` spawns N of them, each given the grant
    through its spawn pipe, never its environment."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, log_file=settings.log_file("vault"))
    runtime = bootstrap.vault_runtime(settings, grant)
    ssl_options = uvicorn_ssl_options(CertPaths.under(settings.data_dir))
    asyncio.run(serve_vault(runtime, sockets, ssl_options, janitor=janitor))


@vault_app.callback()
def vault(
    ctx: typer.Context,
    *,
    host: Annotated[str, typer.Option(help="Address of the browser origin's listener.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the browser origin (card fields, bastion.js, tokens).")] = 8001,
    internal_host: Annotated[str, typer.Option(help="Address of the mutual-TLS listener the API calls.")] = "127.0.0.1",
    internal_port: Annotated[int, typer.Option(help="Port of the mutual-TLS listener the API calls.")] = 8002,
    workers: Annotated[
        int, typer.Option(min=1, max=VAULT_WORKERS_MAX, help="Vault processes sharing both ports (one of them sweeps).")
    ] = 1,
) -> None:
    """Run the card vault (its own origin and its mutual-TLS listener), unless a subcommand is given."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        sockets = VaultSockets.bind((host, port), (internal_host, internal_port))
    except OSError as error:
        raise fail(f"cannot listen on {host}:{port} and {internal_host}:{internal_port}: {error.strerror}") from None
    settings = Settings.from_env()
    grant = Grant.received() or bootstrap.vault_grant(settings, bootstrap.owner_url(settings))
    if workers == 1:
        _serve_vault_process(grant, sockets, janitor=True)
        return
    target = functools.partial(_serve_vault_process, grant)
    raise typer.Exit(supervise(target, sockets, workers=workers, forward_timeout_s=settings.vault_forward_timeout_s))


@vault_app.command("scan-pan")
def vault_scan_pan(
    logs: Annotated[Path | None, typer.Option(help="The logs directory (default: the data directory's logs).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Search the API's tables (events included) and the logs for anything that looks like a card
    number; exit 1 if anything is found. Findings are shown as BIN and last 4 only."""
    settings = Settings.from_env()
    log_dir = logs or settings.log_dir or settings.data_dir / "logs"

    async def work(database: Database) -> PanScan:
        async with database.connection() as connection:
            return await scan_database(connection, "public")

    in_database = run_with_owner_database(work, settings)
    in_logs = (
        scan_logs(log_dir)
        if log_dir.is_dir()
        else PanScan(findings=[], incomplete=[f"no logs directory at {log_dir}: the logs were not scanned"])
    )
    findings = in_database.findings + in_logs.findings
    for note in in_database.incomplete + in_logs.incomplete:
        typer.echo(f"warning: {note}", err=True)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(finding) for finding in findings]))
    else:
        for finding in findings:
            typer.echo(f"{finding.location}: {finding.masked}")
        typer.echo(f"{len(findings)} card number(s) found outside the vault" if findings else "no card numbers found")
    if findings:
        raise typer.Exit(code=1)
    if not (in_database.clean and in_logs.clean):
        raise fail("the scan was incomplete (see the warnings): it proves nothing about what it did not read")
