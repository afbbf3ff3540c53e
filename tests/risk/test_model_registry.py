"""The model registry through `bastion risk promote`, `shadow`, `rollback` and `models`, on a
database of the test's own (the registry is the platform's: a champion here would score the
session's payments): one champion at a time, the one before it retired and restored by a
rollback, a challenger beside it, the changes the registry's state does not allow refused with
one `error:` line, and every change audited under the platform."""

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bastion import bootstrap, ledger
from bastion.cli.common import CLI_ACTOR
from bastion.platform.db import Actor, Database, Tenant
from bastion.risk import models
from bastion.risk.features import FEATURES
from bastion.risk.learning import Trained
from tests.support.postgres import TestDatabase
from tests.support.risk_ml import bastion_in_process

SINCE = datetime(2018, 7, 25, tzinfo=UTC)
PLATFORM = Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=True)


def _candidate(number: int) -> Trained:
    """A registry entry: the registry keeps the file and what it says of it, and never reads it."""
    content = json.dumps({"format": "bastion-risk-model/1", "candidate": number}).encode()
    validation = {"auc_roc": 0.9, "average_precision": 0.5 + number / 100, "card_precision_top_100": 0.2}
    return Trained(
        content=content,
        sha256=hashlib.sha256(content).hexdigest(),
        features=list(FEATURES),
        params={"num_leaves": 7},
        metrics={"validation": validation, "training_rows": 1000, "training_frauds": 10, "folds": 4},
        reference={name: {"edges": [], "shares": [1.0, 0.0]} for name in FEATURES},
    )


@pytest.fixture
async def registry(private_database: TestDatabase) -> AsyncIterator[Database]:
    """Three candidates, versions 1 to 3, in an empty registry."""
    owner = bootstrap.owner_database(private_database.owner_url)
    for number in (1, 2, 3):
        async with owner.unit_of_work(PLATFORM, Actor(id="test")) as uow:
            registered = await models.register(
                uow,
                _candidate(number),
                private_database.data_dir / "risk-models",
                since=SINCE,
                until=SINCE + timedelta(days=7),
                delay_days=7,
            )
        assert (registered["version"], registered["status"]) == (number, "candidate")
    yield owner
    await owner.dispose()


async def _statuses(owner: Database) -> dict[int, str]:
    async with owner.transaction() as connection:
        return {row["version"]: row["status"] for row in await connection.fetch("SELECT version, status FROM risk_models")}


async def _audited(owner: Database) -> list[tuple[Any, ...]]:
    async with owner.transaction() as connection:
        rows = await connection.fetch(
            "SELECT merchant_id, livemode, actor, action_type, resource_id, before_state ->> 'version' AS before_version, "
            "before_state ->> 'status' AS before, after_state ->> 'version' AS after_version, after_state ->> 'status' AS after "
            "FROM audit_events WHERE resource_type = 'risk.model' ORDER BY insert_order"
        )
    return [tuple(row.values()) for row in rows]


async def test_promote_shadow_and_roll_back(private_database: TestDatabase, registry: Database) -> None:
    env = private_database.env()

    async def bastion(*args: str) -> tuple[int, str, str]:
        ran = await bastion_in_process("risk", *args, env=env)
        return ran.returncode, ran.stdout, ran.stderr

    assert await bastion("rollback") == (1, "", "error: There is no promotion to roll back\n")
    assert await bastion("promote", "1") == (0, "model 1 is the champion\n", "")
    assert await _statuses(registry) == {1: "champion", 2: "candidate", 3: "candidate"}
    assert await bastion("promote", "1") == (1, "", "error: Model 1 is the champion already\n")
    assert await bastion("promote", "2") == (0, "model 2 is the champion\n", "")
    assert await _statuses(registry) == {1: "retired", 2: "champion", 3: "candidate"}
    assert await bastion("shadow", "3") == (0, "model 3 is the challenger\n", "")
    assert await bastion("shadow", "3") == (1, "", "error: Model 3 is the challenger already\n")
    assert await bastion("shadow", "2") == (1, "", "error: Model 2 is the champion already\n")
    assert await _statuses(registry) == {1: "retired", 2: "champion", 3: "challenger"}

    assert await bastion("rollback") == (0, "model 1 is the champion again\n", "")
    assert await _statuses(registry) == {1: "champion", 2: "retired", 3: "challenger"}
    assert await bastion("rollback") == (1, "", "error: Model 1 was the first champion: there is none to go back to\n")
    assert await bastion("promote", "4") == (1, "", "error: No such model version: 4\n")
    assert await _statuses(registry) == {1: "champion", 2: "retired", 3: "challenger"}

    code, listed, _ = await bastion("models", "--json")
    assert code == 0
    assert [(model["version"], model["status"]) for model in json.loads(listed)] == [
        (1, "champion"),
        (2, "retired"),
        (3, "challenger"),
    ]
    code, table, _ = await bastion("models")
    assert code == 0
    assert [line.split()[:2] for line in table.splitlines()] == [["1", "champion"], ["2", "retired"], ["3", "challenger"]]

    # Each change once, under the platform; refusals change nothing and leave no trace.
    platform = (ledger.PLATFORM_MERCHANT_ID, True)
    assert await _audited(registry) == [
        (*platform, "test", "risk.model.create", "model:1", None, None, "1", "candidate"),
        (*platform, "test", "risk.model.create", "model:2", None, None, "2", "candidate"),
        (*platform, "test", "risk.model.create", "model:3", None, None, "3", "candidate"),
        (*platform, CLI_ACTOR.id, "risk.model.promote", "model:1", "1", "candidate", "1", "champion"),
        (*platform, CLI_ACTOR.id, "risk.model.retire", "model:1", "1", "champion", "1", "retired"),
        (*platform, CLI_ACTOR.id, "risk.model.promote", "model:2", "2", "candidate", "2", "champion"),
        (*platform, CLI_ACTOR.id, "risk.model.shadow", "model:3", "3", "candidate", "3", "challenger"),
        # A rollback's records: the champion it demoted, the one it restored, each its own.
        (*platform, CLI_ACTOR.id, "risk.model.rollback", "model:2", "2", "champion", "2", "retired"),
        (*platform, CLI_ACTOR.id, "risk.model.restore", "model:1", "1", "retired", "1", "champion"),
    ]


async def test_a_second_rollback_goes_one_further_back(private_database: TestDatabase, registry: Database) -> None:
    env = private_database.env()

    async def bastion(*args: str) -> str:
        ran = await bastion_in_process("risk", *args, env=env)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout

    await bastion("promote", "1")
    await bastion("promote", "2")
    await bastion("shadow", "3")
    # The challenger may be promoted: it leaves the challenger's place empty.
    assert await bastion("promote", "3") == "model 3 is the champion\n"
    assert await _statuses(registry) == {1: "retired", 2: "retired", 3: "champion"}
    assert await bastion("rollback") == "model 2 is the champion again\n"
    assert await bastion("rollback") == "model 1 is the champion again\n"
    assert await _statuses(registry) == {1: "champion", 2: "retired", 3: "retired"}
    refused = await bastion_in_process("risk", "rollback", env=env)
    assert (refused.returncode, refused.stderr) == (1, "error: Model 1 was the first champion: there is none to go back to\n")


async def test_a_rollback_undoes_the_latest_promotion_even_of_a_former_champion(
    private_database: TestDatabase, registry: Database
) -> None:
    env = private_database.env()

    async def bastion(*args: str) -> tuple[int, str]:
        ran = await bastion_in_process("risk", *args, env=env)
        return ran.returncode, ran.stdout or ran.stderr

    for version in ("1", "2", "1"):
        assert (await bastion("promote", version))[0] == 0
    assert await bastion("rollback") == (0, "model 2 is the champion again\n")
    assert await bastion("rollback") == (0, "model 1 is the champion again\n")
    assert await bastion("rollback") == (1, "error: Model 1 was the first champion: there is none to go back to\n")
    assert await _statuses(registry) == {1: "champion", 2: "retired", 3: "candidate"}
