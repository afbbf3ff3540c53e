"""`bastion risk`: what the risk engine needs from the operator."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bastion import bootstrap
from bastion.cli.common import fail, with_owner_database
from bastion.platform.db import Database
from bastion.platform.settings import Settings
from bastion.risk.rates import RatesInvalid, load_rates, parse_rates

risk_app = typer.Typer(help="The risk engine's data.", no_args_is_help=True)
rates_app = typer.Typer(help="Exchange rates to US dollars, for :amount_in_usd:.", no_args_is_help=True)
risk_app.add_typer(rates_app, name="rates")

_FILE_BYTES_MAX = 1_000_000


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
