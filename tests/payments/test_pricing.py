"""Pricing per merchant and currency: set by an operator with the CLI (audited), the default
elsewhere, refused with a clear line when wrong; the API role reads its own merchant's prices
and cannot write any."""

import asyncpg
import pytest

from bastion import bootstrap
from bastion.payments import price_in, prices, set_price
from bastion.platform.db import Actor, Tenant
from bastion.platform.settings import Settings
from tests.support.cli import run_bastion
from tests.support.platform import Platform
from tests.support.postgres import TestDatabase


async def test_an_operator_sets_a_price_and_every_other_currency_pays_the_default(
    platform: Platform, test_database: TestDatabase
) -> None:
    merchant = await platform.merchant()
    env = test_database.env()
    shown = await run_bastion("merchant", "pricing", "show", "--merchant", merchant.merchant_id, env=env)
    assert (shown.returncode, shown.stdout) == (
        0,
        "every currency: the default, 2.9% + 30 cents scaled by the currency's exponent\n",
    )

    ran = await run_bastion(
        "merchant", "pricing", "set", "--merchant", merchant.merchant_id, "--currency", "eur",
        "--basis-points", "250", "--fixed", "25", env=env,
    )  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, "EUR: 2.5% + 25 minor units per capture\n"), ran.stderr
    eur = await run_bastion("merchant", "pricing", "show", "--merchant", merchant.merchant_id, "--currency", "EUR", env=env)
    assert eur.stdout == "EUR: 2.5% + 25 minor units per capture (set)\n"
    kwd = await run_bastion("merchant", "pricing", "show", "--merchant", merchant.merchant_id, "--currency", "KWD", env=env)
    assert kwd.stdout == "KWD: 2.9% + 300 minor units per capture (the default)\n"

    async with platform.owner.transaction() as connection:
        audit = await connection.fetchrow(
            "SELECT actor, before_state, after_state FROM audit_events WHERE resource_id = $1", f"{merchant.merchant_id}:EUR"
        )
    assert audit is not None, "the change is audited"
    assert audit["before_state"] is None
    assert audit["after_state"] == {"currency": "EUR", "basis_points": 250, "fixed_minor": 25}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--currency", "XYZ", "--basis-points", "290", "--fixed", "30"), "Unknown or unsupported currency 'XYZ'"),
        (("--currency", "EUR", "--basis-points", "10001", "--fixed", "30"), "basis_points must be between 0 and 10000"),
        (("--currency", "EUR", "--basis-points", "290", "--fixed", "-1"), "fixed_minor must be a non-negative integer"),
    ],
)
async def test_a_wrong_price_is_one_line_and_nothing_is_written(
    platform: Platform, test_database: TestDatabase, options: tuple[str, ...], message: str
) -> None:
    merchant = await platform.merchant()
    ran = await run_bastion("merchant", "pricing", "set", "--merchant", merchant.merchant_id, *options, env=test_database.env())
    assert ran.returncode == 1
    assert ran.stderr.startswith("error: "), ran.stderr
    assert message in ran.stderr, ran.stderr
    async with platform.owner.unit_of_work(Tenant(merchant.merchant_id, False), Actor(id="test")) as uow:
        assert await prices(uow) == []


async def test_an_unknown_merchant_is_named(test_database: TestDatabase) -> None:
    ran = await run_bastion(
        "merchant", "pricing", "set", "--merchant", "mer_01M85AAAAAAAAAAAAAAAAAAAAA", "--currency", "EUR",
        "--basis-points", "290", "--fixed", "30", env=test_database.env(),
    )  # fmt: skip
    assert ran.returncode == 1
    assert "No such merchant: 'mer_01M85AAAAAAAAAAAAAAAAAAAAA'" in ran.stderr


async def test_the_api_role_reads_its_own_merchants_prices_and_writes_none(
    platform: Platform, settings: Settings, test_database: TestDatabase
) -> None:
    ours, theirs = await platform.merchant(), await platform.merchant()
    for merchant, bps in ((ours, 100), (theirs, 200)):
        async with platform.owner.unit_of_work(Tenant(merchant.merchant_id, False), Actor(id="test")) as uow:
            await set_price(uow, "EUR", bps, 0)
    async with platform.services.database.unit_of_work(Tenant(ours.merchant_id, True), Actor(id="test")) as uow:
        assert [price["basis_points"] for price in await prices(uow)] == [100], "its own, in either mode"
        pricing, is_set = await price_in(uow, "USD")
        assert (pricing.basis_points, is_set) == (290, False)
    app = await asyncpg.connect(bootstrap.role_dsn(settings, test_database.owner_url, test_database.roles.app))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app.execute("UPDATE merchant_pricing SET basis_points = 0 WHERE merchant_id = $1", ours.merchant_id)
    finally:
        await app.close()
