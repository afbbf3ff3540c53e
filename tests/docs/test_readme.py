"""The README's commands teach what they show: every write to the API it shows sends an
`Idempotency-Key`, as the API conventions ask of every POST (docs/api.md)."""

import re
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"
_SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)


def _commands(text: str) -> list[str]:
    """Each shell command of the README's `sh` blocks, continuation lines joined."""
    commands = []
    for block in _SHELL_BLOCK.findall(text):
        commands.extend(block.replace("\\\n", " ").splitlines())
    return commands


def test_every_api_write_in_the_readme_sends_an_idempotency_key() -> None:
    # A body (-d) or an explicit POST, sent to the API ($L is the ledger's base URL there, $W webhooks').
    writes = [
        command
        for command in _commands(README.read_text())
        if "curl" in command
        and ("127.0.0.1:8000" in command or "$L/" in command or "$W" in command)
        and re.search(r" -d | -X POST ", command)
    ]
    assert len(writes) >= 8, writes  # the customer, ledger and card tours
    assert [command for command in writes if "Idempotency-Key" not in command and "$(K " not in command] == []
