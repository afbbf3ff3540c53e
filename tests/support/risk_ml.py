"""What the tests of the fraud models share: merchants made directly with the owner role (no API
needed), history files written from simulations or by hand, the history a merchant holds, and
`bastion` commands run in this process for the many short ones whose exit code and `error:` line
are what a test checks (a process of their own costs seconds of imports each)."""

import asyncio
from collections.abc import Mapping
from datetime import date
from pathlib import Path

from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.kernel.ids import new_id
from bastion.merchants import create_merchant
from bastion.platform.db import Actor, Database, Tenant
from bastion.risk.simulation import Simulated, simulate
from tests.support.cli import Ran

HEADER = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO"
START = date(2018, 4, 1)


async def new_merchant(owner: Database, *, name: str = "History merchant") -> str:
    """A merchant of its own for one test: its history is nobody else's."""
    merchant_id = new_id("mer")
    async with owner.unit_of_work(Tenant(merchant_id, livemode=False), Actor(id="test")) as uow:
        await create_merchant(uow, name)
    return merchant_id


def write_lines(path: Path, *lines: str) -> Path:
    """A CSV file of `lines`, the header first unless a line says otherwise."""
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def write_simulation(path: Path, *, customers: int, terminals: int, days: int, seed: int) -> Simulated:
    simulated = simulate(customers=customers, terminals=terminals, days=days, start=START, seed=seed)
    path.write_text("".join(simulated.csv_lines()), encoding="utf-8")
    return simulated


async def history_count(owner: Database, merchant_id: str) -> tuple[int, int]:
    """How many history rows and imports `merchant_id` has, in both modes."""
    async with owner.transaction() as connection:
        rows = await connection.fetchval("SELECT count(*) FROM risk_history WHERE merchant_id = $1", merchant_id)
        imports = await connection.fetchval("SELECT count(*) FROM risk_history_imports WHERE merchant_id = $1", merchant_id)
    return rows, imports


async def bastion_in_process(*args: str, env: Mapping[str, str]) -> Ran:
    """`bastion <args>` through the real Typer app in this process, in a thread of its own (a
    command runs its own event loop). A failure the app does not turn into an `error:` line is
    raised, as it would end a process with a traceback."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=dict(env))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)
