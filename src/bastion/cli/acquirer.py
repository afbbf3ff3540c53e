"""`bastion acquirer`: the sandbox acquirer's HTTPS listener and its cardholder pages (`serve`
starts it)."""

import asyncio
import dataclasses
from typing import Annotated

import typer

from bastion import bootstrap
from bastion.acquirer.app import create_app
from bastion.acquirer.pages import create_pages_app
from bastion.acquirer.settlement import Settled, report_path, settle
from bastion.platform.certs import CertPaths
from bastion.platform.grant import Grant
from bastion.platform.logging import configure_logging
from bastion.platform.settings import Settings

acquirer_app = typer.Typer(help="Run the sandbox acquirer test payments go to.", invoke_without_command=True)


@acquirer_app.callback()
def acquirer(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of its HTTPS listener (BASTION_ACQUIRER_URL points the API at it).")] = 8003,
    pages_port: Annotated[int, typer.Option(help="Port of its cardholder pages (the 3-D Secure challenge), plain HTTP.")] = 8004,
) -> None:
    """Run the sandbox acquirer, unless a subcommand is given."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    settings = Settings.from_env()
    configure_logging(settings.log_level, log_file=settings.log_file("acquirer"))
    grant = Grant.received() or bootstrap.acquirer_grant(settings, bootstrap.owner_url(settings))
    paths = CertPaths.under(settings.data_dir)
    runtime = bootstrap.acquirer_runtime(settings, grant, pages_url=f"http://{host}:{pages_port}")
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                create_app(runtime),
                host=host,
                port=port,
                ssl_certfile=str(paths.acquirer_cert),
                ssl_keyfile=str(paths.acquirer_key),
                log_config=None,
                access_log=False,
            )
        ),
        uvicorn.Server(uvicorn.Config(create_pages_app(runtime), host=host, port=pages_port, log_config=None, access_log=False)),
    ]

    async def serve(server: uvicorn.Server) -> None:
        try:
            await server.serve()
        finally:
            # One listener stopping (a signal reaches only one of them) stops the other.
            for other in servers:
                other.should_exit = True

    async def serve_both() -> None:
        await asyncio.gather(*(serve(server) for server in servers))

    asyncio.run(serve_both())


@acquirer_app.command("settle")
def settle_now(
    as_json: Annotated[bool, typer.Option("--json", help="Print the settlements as JSON.")] = False,
) -> None:
    """Settle now what the acquirer owes each merchant (captures less refunds and lost disputes),
    write the day's report and queue the notifications the running acquirer sends to Bastion."""
    import orjson

    settings = Settings.from_env()
    grant = bootstrap.acquirer_grant(settings, bootstrap.owner_url(settings))
    # A settlement opens no challenge: the pages' address is never written.
    runtime = bootstrap.acquirer_runtime(settings, grant, pages_url="http://127.0.0.1")

    async def run() -> list[Settled]:
        try:
            return await settle(runtime)
        finally:
            await runtime.client.aclose()
            await runtime.database.dispose()

    settled = asyncio.run(run())
    report = report_path(runtime.report_dir, runtime.database.clock.now().date())
    if as_json:
        typer.echo(orjson.dumps({"settlements": [dataclasses.asdict(each) for each in settled], "report": str(report)}).decode())
        return
    for each in settled:
        typer.echo(f"{each.id}: {each.merchant} {each.currency} net {each.net} minor units, {each.items} items")
    typer.echo(f"settled {len(settled)}; report: {report}")
