"""`bastion`: serve, migrate, administer merchants, keys and the audit trail, and listen to a
merchant's events. One module per command group; this one puts them together."""

import typer

from bastion.cli import processes
from bastion.cli.acquirer import acquirer_app
from bastion.cli.audit import audit_app
from bastion.cli.common import Commands
from bastion.cli.events import events_app
from bastion.cli.ledger import ledger_app
from bastion.cli.listen import listen_command
from bastion.cli.merchants import apikey_app, merchant_app
from bastion.cli.payments import payments_app
from bastion.cli.risk import risk_app
from bastion.cli.vault import certs_app, keys_app, vault_app

app = typer.Typer(
    cls=Commands, help="Bastion, a self-hosted payments platform.", no_args_is_help=True, pretty_exceptions_enable=False
)
for command in (processes.migrate, processes.api, processes.serve, processes.worker):
    app.command()(command)
app.command("listen")(listen_command)
app.add_typer(merchant_app, name="merchant")
app.add_typer(apikey_app, name="apikey")
app.add_typer(audit_app, name="audit")
app.add_typer(ledger_app, name="ledger")
app.add_typer(payments_app, name="payments")
app.add_typer(risk_app, name="risk")
app.add_typer(certs_app, name="certs")
app.add_typer(keys_app, name="keys")
app.add_typer(vault_app, name="vault")
app.add_typer(acquirer_app, name="acquirer")
app.add_typer(events_app, name="events")


def main() -> None:
    app(prog_name="bastion")
