"""`bastion risk`: what the risk engine needs from the operator."""

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli import risk_ml
from bastion.cli.common import fail, run_with_owner_database
from bastion.payments import fraud_charges
from bastion.platform.db import Database, Tenant
from bastion.platform.settings import Settings
from bastion.risk.backtest import (
    CANDIDATE_BYTES_MAX,
    CandidateInvalid,
    backtest,
    merchant_lists,
    parse_candidate,
    shadow_report,
    stored_decisions,
)
from bastion.risk.iin import IinInvalid, load_iin_ranges, parse_iin_ranges
from bastion.risk.rates import RatesInvalid, load_rates, parse_rates
from bastion.risk.replay import Replayed, replay

risk_app = typer.Typer(help="The risk engine's data and decisions.", no_args_is_help=True)
rates_app = typer.Typer(help="Exchange rates to US dollars, for :amount_in_usd:.", no_args_is_help=True)
risk_app.add_typer(rates_app, name="rates")
for name, command in (
    ("simulate", risk_ml.simulate_command),
    ("import-transactions", risk_ml.import_command),
    ("train", risk_ml.train_command),
    ("evaluate", risk_ml.evaluate_command),
    ("models", risk_ml.models_command),
    ("promote", risk_ml.promote_command),
    ("shadow", risk_ml.shadow_command),
    ("rollback", risk_ml.rollback_command),
    ("drift", risk_ml.drift_command),
):
    risk_app.command(name)(command)
iin_app = typer.Typer(help="Issuers' card number ranges and their countries, for :card_country:.", no_args_is_help=True)
risk_app.add_typer(iin_app, name="iin")

_FILE_BYTES_MAX = 1_000_000


@risk_app.command("replay")
def replay_decision(
    decision: Annotated[str, typer.Option("--decision", help="The decision's id, rd_...")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compute a decision again from what it was made from; exit 1 if it comes out otherwise."""

    async def work(database: Database) -> Replayed | None:
        async with database.connection() as connection:
            return await replay(connection, decision)

    replayed = run_with_owner_database(work)
    if replayed is None:
        raise fail(f"no such decision: {decision}")
    if as_json:
        typer.echo(json.dumps({"same": replayed.same, **dataclasses.asdict(replayed)}))
    else:
        shown = f"{replayed.recomputed.action} by {replayed.recomputed.rule or 'no rule'}"
        typer.echo(f"{decision}: {'the same decision' if replayed.same else 'a different decision'}: {shown}")
    if not replayed.same:
        raise typer.Exit(code=1)


def _file_text(path: Path, bytes_max: int) -> str:
    """The UTF-8 text of a file the operator names, or one `error:` line saying why not."""
    try:
        if path.stat().st_size > bytes_max:
            raise fail(f"{path}: larger than {bytes_max} bytes")
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise fail(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise fail(f"{path}: not UTF-8 text: {error}") from None


Merchant = Annotated[str, typer.Option("--merchant", help="The merchant whose decisions to read, mer_...")]
Live = Annotated[bool, typer.Option("--live", help="Live-mode decisions (default: test mode).")]
Since = Annotated[datetime | None, typer.Option("--since", formats=["%Y-%m-%d"], help="Only decisions from this day (UTC) on.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@risk_app.command("backtest")
def backtest_ruleset(
    ruleset: Annotated[Path, typer.Option("--ruleset", help='A JSON file: {"rules": [{"id": ..., "rule": ...}]}.')],
    merchant: Merchant,
    live: Live = False,
    since: Since = None,
    as_json: AsJson = False,
) -> None:
    """Evaluate a candidate ruleset over a merchant's stored decisions, with the values recorded
    then: per rule, its hits and their precision and recall against the attempts later found to be
    fraud (disputed or refunded as fraud, or rejected in review)."""
    settings = Settings.from_env()
    tenant = Tenant(merchant, livemode=live)
    text = _file_text(ruleset, CANDIDATE_BYTES_MAX)

    async def work(database: Database) -> dict[str, Any]:
        candidate = parse_candidate(text, await merchant_lists(database, tenant))
        decisions = await stored_decisions(database, tenant, since)
        async with database.connection() as connection:
            fraud = await fraud_charges(connection, tenant, [row["attempt_id"] for row in decisions])
        return backtest(candidate, decisions, fraud).report()

    try:
        report = run_with_owner_database(work, settings)
    except CandidateInvalid as error:
        raise fail(f"{ruleset}: {error}") from None
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{report['decisions']} decisions ({report['not_assessed']} not assessed), {report['fraud']} fraud")
    typer.echo("the candidate would: " + ", ".join(f"{action} {count}" for action, count in report["actions"].items()))
    for rule in report["rules"]:
        typer.echo(f"{rule['id']}: {rule['hits']} hits, precision {rule['precision']}, recall {rule['recall']}  ({rule['rule']})")


@risk_app.command("shadow-report")
def shadow_report_command(merchant: Merchant, live: Live = False, since: Since = None, as_json: AsJson = False) -> None:
    """How the shadow ruleset's verdicts compared with the live one's on the same attempts."""

    async def work(database: Database) -> dict[str, Any]:
        return shadow_report(await stored_decisions(database, Tenant(merchant, livemode=live), since))

    report = run_with_owner_database(work)
    if as_json:
        typer.echo(json.dumps(report))
        return
    typer.echo(f"{report['compared']} attempts seen by both, {report['agreed']} decided alike")
    for pair in report["pairs"]:
        typer.echo(f"live {pair['live']}, shadow {pair['shadow']}: {pair['count']}")


@rates_app.command("load")
def rates_load(path: Annotated[Path, typer.Argument(help="A CSV file: currency,usd_per_unit (EUR,1.08).")]) -> None:
    """Load the rates, all lines or none; a currency not in the file keeps its rate."""
    settings = Settings.from_env()
    try:
        rates = parse_rates(_file_text(path, _FILE_BYTES_MAX))
    except RatesInvalid as error:
        raise fail(f"{path}: {error}") from None

    async def work(database: Database) -> int:
        return await load_rates(database, rates, database.clock.now())

    loaded = run_with_owner_database(work, settings)
    typer.echo(f"loaded {loaded} rates to USD")


_IIN_BYTES_MAX = 50_000_000


@iin_app.command("load")
def iin_load(path: Annotated[Path, typer.Argument(help="A CSV file: iin_start,iin_end,country (400000,499999,US).")]) -> None:
    """Replace the IIN ranges with the file's, all lines or none."""
    settings = Settings.from_env()
    try:
        ranges = parse_iin_ranges(_file_text(path, _IIN_BYTES_MAX))
    except IinInvalid as error:
        raise fail(f"{path}: {error}") from None

    async def work(database: Database) -> int:
        return await load_iin_ranges(database, ranges)

    loaded = run_with_owner_database(work, settings)
    typer.echo(f"loaded {loaded} IIN ranges")
