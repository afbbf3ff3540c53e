"""`bastion merchant` (with `origins`) and `bastion apikey`."""

from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import typer

from bastion import bootstrap
from bastion.cli.common import CLI_ACTOR, fail, print_resource, run_with_owner_database
from bastion.kernel.ids import new_id
from bastion.merchants import add_allowed_origin, allowed_origins, create_api_key, create_merchant, remove_allowed_origin
from bastion.payments import DEFAULT_BASIS_POINTS, price_in, prices, set_price
from bastion.platform.db import Database, Tenant, UnitOfWork
from bastion.platform.settings import Settings

T = TypeVar("T")

merchant_app = typer.Typer(help="Manage merchants.", no_args_is_help=True)
apikey_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
origins_app = typer.Typer(help="The browser origins allowed to frame a merchant's card fields.", no_args_is_help=True)
merchant_app.add_typer(origins_app, name="origins")


@merchant_app.command("create")
def merchant_create(
    name: Annotated[str, typer.Option(help="The merchant's display name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a merchant."""

    async def work(database: Database) -> dict[str, Any]:
        async with database.unit_of_work(Tenant(merchant_id=new_id("mer"), livemode=False), CLI_ACTOR) as uow:
            return await create_merchant(uow, name)

    print_resource(run_with_owner_database(work), as_json)


@apikey_app.command("create")
def apikey_create(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")],
    mode: Annotated[str, typer.Option(help="test or live.")] = "test",
    scope: Annotated[list[str] | None, typer.Option(help="A scope to grant; repeat for several. Default: all.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create an API key; its secrets are printed once and stored only as keyed hashes."""
    if mode not in ("test", "live"):
        raise fail("--mode must be test or live")
    settings = Settings.from_env()
    hasher = bootstrap.key_hasher(settings)

    async def work(database: Database) -> dict[str, Any]:
        async with database.unit_of_work(Tenant(merchant_id=merchant, livemode=mode == "live"), CLI_ACTOR) as uow:
            issued = await create_api_key(uow, hasher, scope)
        return {
            "id": issued.id,
            "merchant": issued.merchant_id,
            "livemode": issued.livemode,
            "scopes": issued.scopes,
            "secret": issued.secret,
            "publishable": issued.publishable,
        }

    print_resource(run_with_owner_database(work, settings), as_json)


def _as_merchant(merchant: str, live: bool, change: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """`change` in one unit of work of the merchant's, in one mode, as the owner."""

    async def work(database: Database) -> T:
        async with database.unit_of_work(Tenant(merchant_id=merchant, livemode=live), CLI_ACTOR) as uow:
            return await change(uow)

    return run_with_owner_database(work)


def _origins_command(merchant: str, live: bool, change: Callable[[UnitOfWork], Awaitable[list[str]]]) -> None:
    origins = _as_merchant(merchant, live, change)
    typer.echo("\n".join(origins) if origins else "(no origins: the card fields cannot be framed anywhere)")


# Origins are per mode, like keys: a test page never frames live card fields.
_LIVE = typer.Option("--live", help="Live mode's origins (https only); test mode's without it.")


@origins_app.command("add")
def origins_add(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")],
    origin: Annotated[str, typer.Argument(help="A page origin like https://shop.example (test mode: also http on localhost).")],
    live: Annotated[bool, _LIVE] = False,
) -> None:
    """Allow pages of ORIGIN to frame the merchant's card fields in one mode; prints that mode's origins."""
    _origins_command(merchant, live, lambda uow: add_allowed_origin(uow, origin))


@origins_app.command("remove")
def origins_remove(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")],
    origin: Annotated[str, typer.Argument(help="An origin registered earlier.")],
    live: Annotated[bool, _LIVE] = False,
) -> None:
    """Stop allowing ORIGIN in one mode; prints that mode's origins."""
    _origins_command(merchant, live, lambda uow: remove_allowed_origin(uow, origin))


@origins_app.command("list")
def origins_list(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")], live: Annotated[bool, _LIVE] = False
) -> None:
    """The merchant's registered origins in one mode."""
    _origins_command(merchant, live, allowed_origins)


# Prices hold in both modes (the table has none): read and written in a test-mode unit of work.
pricing_app = typer.Typer(help="What the platform charges a merchant per capture, by currency.", no_args_is_help=True)
merchant_app.add_typer(pricing_app, name="pricing")


def _price_line(currency: str, basis_points: int, fixed_minor: int) -> str:
    return f"{currency}: {Decimal(basis_points) / 100}% + {fixed_minor} minor units per capture"


@pricing_app.command("set")
def pricing_set(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")],
    currency: Annotated[str, typer.Option(help="An ISO 4217 code, like EUR.")],
    basis_points: Annotated[int, typer.Option(help="The share of each capture, in basis points (290 = 2.9 %).")],
    fixed: Annotated[int, typer.Option(help="Plus this many minor units per capture (30 = 0.30 EUR).")],
) -> None:
    """Charge the merchant BASIS_POINTS / 10,000 of each capture in CURRENCY plus FIXED (audited)."""
    price = _as_merchant(merchant, False, lambda uow: set_price(uow, currency.upper(), basis_points, fixed))
    typer.echo(_price_line(price["currency"], price["basis_points"], price["fixed_minor"]))


@pricing_app.command("show")
def pricing_show(
    merchant: Annotated[str, typer.Option(help="The merchant id, mer_...")],
    currency: Annotated[str | None, typer.Option(help="The price in this currency, set or default.")] = None,
) -> None:
    """The prices set for the merchant, or its price in one currency."""
    if currency is not None:
        pricing, is_set = _as_merchant(merchant, False, lambda uow: price_in(uow, currency.upper()))
        source = "set" if is_set else "the default"
        typer.echo(f"{_price_line(currency.upper(), pricing.basis_points, pricing.fixed_minor)} ({source})")
        return
    prices_set = _as_merchant(merchant, False, prices)
    for price in prices_set:
        typer.echo(_price_line(price["currency"], price["basis_points"], price["fixed_minor"]))
    others = "any other currency" if prices_set else "every currency"
    typer.echo(f"{others}: the default, {Decimal(DEFAULT_BASIS_POINTS) / 100}% + 30 cents scaled by the currency's exponent")
