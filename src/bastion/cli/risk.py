"""`bastion risk`: what the risk engine needs from the operator."""

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from bastion import bootstrap
from bastion.cli.common import fail, with_owner_database
from bastion.platform.db import Database
from bastion.platform.settings import Settings
from bastion.risk.rates import RatesInvalid, load_rates, parse_rates
from bastion.risk.replay import Replayed, replay

risk_app = typer.Typer(help="The risk engine's data and decisions.", no_args_is_help=True)
rates_app = typer.Typer(help="Exchange rates to US dollars, for :amount_in_usd:.", no_args_is_help=True)
risk_app.add_typer(rates_app, name="rates")

_FILE_BYTES_MAX = 1_000_000


@risk_app.command("replay")
def replay_decision(
    decision: Annotated[str, typer.Option("--decision", help="The decision's id, rd_...")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compute a decision again from what it was made from; exit 1 if it comes out otherwise."""
    settings = Settings.from_env()

    async def work(database: Database) -> Replayed | None:
        async with database.connection() as connection:
            return await replay(connection, decision)

    with bootstrap.owner_url_for_command(settings) as url:
        replayed = asyncio.run(with_owner_database(url, work))
    if replayed is None:
        raise fail(f"no such decision: {decision}")
    if as_json:
        typer.echo(json.dumps({"same": replayed.same, **dataclasses.asdict(replayed)}))
    else:
        shown = f"{replayed.recomputed.action} by {replayed.recomputed.rule or 'no rule'}"
        typer.echo(f"{decision}: {'the same decision' if replayed.same else 'a different decision'}: {shown}")
    if not replayed.same:
        raise typer.Exit(code=1)


@rates_app.command("load")
def rates_load(path: Annotated[Path, typer.Argument(help="A CSV file: currency,usd_per_unit (EUR,1.08).")]) -> None:
    """Load the rates, all lines or none; a currency not in the file keeps its rate."""
    settings = Settings.from_env()
    try:
        if path.stat().st_size > _FILE_BYTES_MAX:
            raise fail(f"{path}: larger than {_FILE_BYTES_MAX} bytes")
        rates = parse_rates(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise fail(f"{path}: {error.strerror}") from None
    except (RatesInvalid, UnicodeDecodeError) as error:
        raise fail(f"{path}: {error}") from None

    async def work(database: Database) -> int:
        return await load_rates(database, rates, database.clock.now())

    with bootstrap.owner_url_for_command(settings) as url:
        loaded = asyncio.run(with_owner_database(url, work))
    typer.echo(f"loaded {loaded} rates to USD")
