"""`bastion events`: the event bus's dead letters (docs/events.md, Dead letters)."""

import asyncio
import json
from typing import Annotated

import typer

from bastion.cli.common import fail
from bastion.events import DEAD_LETTERS_MAX, DeadLetter, list_dead_letters, redrive
from bastion.kernel.errors import ConfigurationError
from bastion.platform.settings import NatsBus, Settings

events_app = typer.Typer(help="The event bus.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters of the NATS consumers: list them, re-drive them.", no_args_is_help=True)
events_app.add_typer(dlq_app, name="dlq")

ConsumerName = Annotated[str | None, typer.Option("--consumer", help="Only this consumer's dead letters (default: every one's).")]
Limit = Annotated[int, typer.Option("--limit", min=1, max=DEAD_LETTERS_MAX, help="At most this many, oldest first.")]


def _bus() -> NatsBus:
    bus = Settings.from_env().nats
    if bus is None:
        raise ConfigurationError("no event bus is configured: set BASTION_NATS_URL (docs/events.md)")
    return bus


def _line(letter: DeadLetter) -> str:
    when = letter.dead_lettered_at.isoformat(timespec="seconds") if letter.dead_lettered_at else "?"
    return (
        f"{letter.event_id} {letter.event_type} consumer={letter.consumer} subject={letter.original_subject}"
        f" deliveries={letter.deliveries} at={when} error={letter.last_error}"
    )


@dlq_app.command("list")
def dlq_list(
    consumer: ConsumerName = None,
    limit: Limit = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """The dead letters: event id, type, consumer, original subject, deliveries, when, the last error."""
    letters = asyncio.run(list_dead_letters(_bus(), consumer, limit))
    for letter in letters:
        typer.echo(json.dumps(letter.summary()) if as_json else _line(letter))
    if not as_json:
        typer.echo(f"{len(letters)} dead letters", err=True)


@dlq_app.command("redrive")
def dlq_redrive(
    consumer: ConsumerName = None,
    event: Annotated[str | None, typer.Option("--event", help="Only this event's dead letters, evt_...")] = None,
    redrive_all: Annotated[bool, typer.Option("--all", help="Every dead letter (of --consumer), up to --limit.")] = False,
    limit: Limit = 100,
) -> None:
    """Publish dead letters again to their original subjects (with a fresh Nats-Msg-Id), then delete
    them from the dead-letter stream. Consumers deduplicate on the event id."""
    if (event is None) == (not redrive_all):
        raise fail("say which: --event evt_... or --all")
    redriven = asyncio.run(redrive(_bus(), consumer, event, limit))
    for letter in redriven:
        typer.echo(f"re-drove {letter.event_id} to {letter.original_subject} (consumer {letter.consumer})")
    typer.echo(f"re-drove {len(redriven)} dead letters")
