"""`bastion risk` commands of the fraud models (docs/risk-ml.md): simulate and import labelled
history, train, evaluate, list, promote, shadow, roll back, and see drift."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from bastion import ledger
from bastion.cli.common import CLI_ACTOR, fail, run_with_owner_database
from bastion.platform.db import Database, Tenant, UnitOfWork
from bastion.platform.settings import Settings
from bastion.risk import models
from bastion.risk.errors import NotEnoughHistory
from bastion.risk.features import DELAY_DAYS_DEFAULT
from bastion.risk.history import HistoryInvalid, Imported, import_history
from bastion.risk.scoring import ModelUnusable
from bastion.risk.simulation import simulate

Day = Annotated[datetime, typer.Option(formats=["%Y-%m-%d"])]
Live = Annotated[bool, typer.Option("--live", help="Live-mode history (default: test mode).")]
AnyMerchant = Annotated[
    str | None, typer.Option("--merchant", help="Only this merchant's history, mer_... (default: every merchant's).")
]
Delay = Annotated[int, typer.Option("--delay-days", min=0, max=60, help="Days before a fraud label is known.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Version = Annotated[int, typer.Argument(min=1, help="The model's version, as `bastion risk models` lists it.")]
_SIMULATE_CUSTOMERS_MAX = 1_000_000
_SIMULATE_TERMINALS_MAX = 1_000_000
_SIMULATE_DAYS_MAX = 3_660


def _utc(day: datetime) -> datetime:
    return day.replace(tzinfo=UTC)


def simulate_command(
    *,
    out: Annotated[Path, typer.Option("--out", help="The CSV file to write.")],
    customers: Annotated[int, typer.Option(min=1, max=_SIMULATE_CUSTOMERS_MAX)] = 5_000,
    terminals: Annotated[int, typer.Option(min=1, max=_SIMULATE_TERMINALS_MAX)] = 10_000,
    days: Annotated[int, typer.Option(min=1, max=_SIMULATE_DAYS_MAX)] = 183,
    start: Annotated[datetime, typer.Option(formats=["%Y-%m-%d"], help="The first day.")] = datetime(2018, 4, 1),
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 0,
) -> None:
    """Write a labelled data set made by the Fraud Detection Handbook's generator (defaults: its own)."""
    simulated = simulate(customers=customers, terminals=terminals, days=days, start=start.date(), seed=seed)
    try:
        with out.open("w", encoding="utf-8", newline="") as stream:
            for chunk in simulated.csv_lines():
                stream.write(chunk)
    except OSError as error:
        raise fail(f"{out}: {error.strerror}") from None
    frauds = int(simulated.fraud.sum())
    typer.echo(f"wrote {len(simulated)} transactions ({frauds} fraudulent) to {out}")


def import_command(
    path: Annotated[Path, typer.Argument(help="A CSV file in the Handbook's format (docs/risk-ml.md, Data).")],
    merchant: Annotated[
        str | None, typer.Option("--merchant", help="The merchant whose history it is, mer_... (default: the platform's).")
    ] = None,
    live: Live = False,
) -> None:
    """Load labelled history, all rows or none; bad rows are named by line."""
    tenant = Tenant(merchant or ledger.PLATFORM_MERCHANT_ID, livemode=live)
    started = datetime.now(UTC)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise fail(f"{path}: {error.strerror}") from None

    async def work(database: Database) -> Imported:
        columns = (TextColumn("importing"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        console = Console(stderr=True)  # stdout keeps only the result; no bar where no one watches
        with Progress(*columns, transient=True, console=console, disable=not console.is_terminal) as progress:
            task = progress.add_task("import", total=size)
            return await import_history(
                database, path, tenant, on_progress=lambda sent: progress.update(task, advance=sent), now=database.clock.now()
            )

    try:
        imported = run_with_owner_database(work)
    except HistoryInvalid as error:
        raise fail(str(error)) from None
    seconds = (datetime.now(UTC) - started).total_seconds()
    typer.echo(
        f"imported {imported.rows} transactions ({imported.frauds} fraudulent) from {imported.first:%Y-%m-%d} "
        f"to {imported.last:%Y-%m-%d} as {imported.id}, {imported.rows / max(seconds, 1e-9):,.0f} rows/s"
    )


def train_command(
    *,
    since: Annotated[datetime, typer.Option("--since", formats=["%Y-%m-%d"], help="The training window's first day.")],
    until: Annotated[datetime, typer.Option("--until", formats=["%Y-%m-%d"], help="The day after its last.")],
    delay_days: Delay = DELAY_DAYS_DEFAULT,
    merchant: AnyMerchant = None,
    live: Live = False,
    as_json: AsJson = False,
) -> None:
    """Train a LightGBM model on the window, its hyperparameters chosen by prequential validation
    on the weeks before it, and register it as a new candidate version."""
    if until <= since:
        raise fail("--until must be after --since")
    settings = Settings.from_env()

    # Here, not at the top: training's scikit-learn would slow every other command's start.
    from bastion.risk.training import Window, train_model

    async def work(database: Database) -> dict[str, Any]:
        return await train_model(
            database,
            Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=True),
            CLI_ACTOR,
            settings.risk_models_dir,
            Window(livemode=live, merchant_id=merchant),
            since=_utc(since),
            until=_utc(until),
            delay_days=delay_days,
        )

    try:
        trained = run_with_owner_database(work, settings)
    except NotEnoughHistory as error:
        raise fail(str(error)) from None
    if as_json:
        typer.echo(json.dumps(trained))
        return
    validation = trained["metrics"]["validation"]
    typer.echo(
        f"model {trained['version']} (candidate): validation AUC {validation['auc_roc']:.3f}, "
        f"AP {validation['average_precision']:.3f}, CP@100 {validation['card_precision_top_100']:.3f}; params {trained['params']}"
    )


def evaluate_command(
    *,
    model: Annotated[int, typer.Option("--model", min=1, help="The model's version.")],
    start: Annotated[
        datetime | None, typer.Option("--start", formats=["%Y-%m-%d"], help="Where the delay begins (default: training's end).")
    ] = None,
    test_days: Annotated[int, typer.Option("--test-days", min=1, max=366)] = 7,
    delay_days: Delay = DELAY_DAYS_DEFAULT,
    merchant: AnyMerchant = None,
    live: Live = False,
    as_json: AsJson = False,
) -> None:
    """The Handbook's metrics of a model on the test days after the delay."""
    settings = Settings.from_env()

    from bastion.risk.training import Window, evaluate_model

    async def work(database: Database) -> dict[str, Any]:
        return await evaluate_model(
            database,
            settings.risk_models_dir,
            Window(livemode=live, merchant_id=merchant),
            model,
            start=None if start is None else _utc(start),
            test_days=test_days,
            delay_days=delay_days,
        )

    try:
        metrics = run_with_owner_database(work, settings)
    except (NotEnoughHistory, ModelUnusable) as error:
        raise fail(str(error)) from None
    if as_json:
        typer.echo(json.dumps(metrics))
        return
    typer.echo(
        f"model {model} on {metrics['test_since'][:10]} to {metrics['test_until'][:10]} "
        f"({metrics['transactions']} transactions, {metrics['frauds']} fraudulent): AUC ROC {metrics['auc_roc']:.3f}, "
        f"average precision {metrics['average_precision']:.3f}, card precision top-100 {metrics['card_precision_top_100']:.3f}"
    )


def models_command(as_json: AsJson = False) -> None:
    """The model versions, with their status, training window and validation metrics."""

    async def work(database: Database) -> list[dict[str, Any]]:
        async with database.connection() as connection:
            return await models.models(connection)

    listed = run_with_owner_database(work)
    if as_json:
        typer.echo(json.dumps(listed))
        return
    for row in listed:
        validation = row["metrics"]["validation"]
        typer.echo(
            f"{row['version']:>4}  {row['status']:<10}  trained {row['trained_since'][:10]} to {row['trained_until'][:10]}  "
            f"AP {validation['average_precision']:.3f}  CP@100 {validation['card_precision_top_100']:.3f}"
        )


def _change(change: Any, *args: Any) -> dict[str, Any]:
    async def work(database: Database) -> dict[str, Any]:
        async with database.unit_of_work(Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=True), CLI_ACTOR) as uow:
            changed: dict[str, Any] = await change(uow, *args)
            return changed

    return run_with_owner_database(work)


def promote_command(version: Version) -> None:
    """Make a version the champion: it scores every decision (the champion before it retires)."""
    promoted = _change(models.promote, version)
    typer.echo(f"model {promoted['version']} is the champion")


def shadow_command(version: Version) -> None:
    """Make a version the challenger: it scores every decision in shadow, recorded beside the champion's."""
    shadowed = _change(models.shadow, version)
    typer.echo(f"model {shadowed['version']} is the challenger")


def rollback_command() -> None:
    """Make the champion before the current one the champion again."""

    async def rollback(uow: UnitOfWork) -> dict[str, Any]:
        return await models.rollback(uow)

    restored = _change(rollback)
    typer.echo(f"model {restored['version']} is the champion again")


def drift_command(
    day: Annotated[
        datetime | None, typer.Option("--day", formats=["%Y-%m-%d"], help="The day (UTC) to compute (default: yesterday).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Compute the champion's feature drift for a day now (the worker does it each day)."""
    wanted = day.date() if day else (datetime.now(UTC) - timedelta(days=1)).date()

    async def work(database: Database) -> dict[str, float]:
        return await models.compute_drift(database, wanted, database.clock.now())

    psi = run_with_owner_database(work)
    if as_json:
        typer.echo(json.dumps(psi))
        return
    if not psi:
        typer.echo(f"fewer than {models.DRIFT_SCORED_MIN} decisions scored by a champion on {wanted}: no drift to measure")
    for feature, value in sorted(psi.items(), key=lambda item: -item[1]):
        flag = "  ALERT" if value > models.DRIFT_ALERT_PSI else ""
        typer.echo(f"{feature:<32} {value:.4f}{flag}")
