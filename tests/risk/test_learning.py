"""Training and evaluation on imported history, on a database of the module's own (the model
registry is the platform's, and the session's other tests promote models of their own): the
Handbook's card precision by hand, a model trained, registered with its file and evaluated
(in this process and by `bastion risk evaluate --json`), a window without fraud refused, and the
model file loaded only when it is the registered one."""

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bastion import bootstrap, ledger
from bastion.platform.db import Actor, Database, Tenant
from bastion.risk.errors import NotEnoughHistory
from bastion.risk.features import DAY_S, FEATURES
from bastion.risk.history import import_history
from bastion.risk.learning import GRID, card_precision_top_k
from bastion.risk.models import read_model
from bastion.risk.scoring import ModelUnusable, Scorer
from bastion.risk.training import Window, evaluate_model, train_model
from tests.support.cli import run_bastion
from tests.support.postgres import TestDatabase, migrated_database
from tests.support.risk_ml import HEADER, START, bastion_in_process, new_merchant, write_lines, write_simulation

FIRST = datetime(START.year, START.month, START.day, tzinfo=UTC)
# A week to train on with its four validation folds' 35 days before it, then a week's delay and
# a week to test on, in 63 simulated days.
SINCE, UNTIL = FIRST + timedelta(days=42), FIRST + timedelta(days=49)
METRICS = {"auc_roc", "average_precision", "card_precision_top_100"}


def test_card_precision_top_k_by_hand() -> None:
    # (day, card, label, score); k = 2. A card's score on a day is its highest, its label too.
    transactions = [
        # Day 0: A 0.9 (fraud), B 0.8 (its 0.05 payment is fraud), C 0.1 (fraud): top A, B, both fraud.
        (0, "A", 1, 0.9),
        (0, "B", 0, 0.8),
        (0, "B", 1, 0.05),
        (0, "C", 1, 0.1),
        # Day 1: A and B were found on day 0 and are left out: top C (fraud), D: 1 of 2.
        (1, "A", 1, 0.99),
        (1, "B", 1, 0.98),
        (1, "C", 1, 0.5),
        (1, "D", 0, 0.4),
        (1, "E", 1, 0.3),
        # Day 2: A, B, C left out; D (not fraud on day 1, so not found) ranks first: top D, F: 0 of 2.
        (2, "C", 1, 0.99),
        (2, "D", 0, 0.9),
        (2, "F", 0, 0.6),
        (2, "E", 1, 0.2),
    ]
    seconds = np.array([day * DAY_S + 3_600 for day, *_ in transactions], dtype=np.int64)
    cards = np.array([ord(card) for _, card, _, _ in transactions], dtype=np.int64)
    labels = np.array([label for _, _, label, _ in transactions], dtype=np.int8)
    scores = np.array([score for *_, score in transactions])
    assert card_precision_top_k(seconds, cards, labels, scores, k=2) == pytest.approx((2 / 2 + 1 / 2 + 0 / 2) / 3)
    # With k = 3: day 0 A, B, C (3 of 3); day 1 D, E (1 of 3, fewer cards than k); day 2 D, F (0 of 3).
    assert card_precision_top_k(seconds, cards, labels, scores, k=3) == pytest.approx((3 / 3 + 1 / 3 + 0 / 3) / 3)


@dataclass(frozen=True)
class Trained:
    database: TestDatabase
    owner: Database
    merchant_id: str
    models_dir: Path
    model: dict[str, Any]


@pytest.fixture(scope="module")
def learning_database(pg_server: tuple[str, Path | None]) -> Iterator[TestDatabase]:
    with migrated_database(*pg_server) as database:
        yield database


@pytest.fixture(scope="module")
async def trained(learning_database: TestDatabase, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Trained]:
    """A simulated merchant's 63 days imported, and a model trained on a week of them and registered."""
    owner = bootstrap.owner_database(learning_database.owner_url)
    merchant_id = await new_merchant(owner)
    path = tmp_path_factory.mktemp("history") / "history.csv"
    write_simulation(path, customers=300, terminals=800, days=63, seed=3)
    await import_history(owner, path, Tenant(merchant_id, livemode=False), on_progress=lambda _: None, now=datetime.now(UTC))
    # Where the CLI run on this database looks for model files.
    models_dir = learning_database.data_dir / "risk-models"
    model = await train_model(
        owner,
        Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=True),
        Actor(id="test"),
        models_dir,
        Window(livemode=False, merchant_id=merchant_id),
        since=SINCE,
        until=UNTIL,
        delay_days=7,
    )
    yield Trained(learning_database, owner, merchant_id, models_dir, model)
    await owner.dispose()


async def test_a_model_is_registered_with_its_file_and_what_it_learned_from(trained: Trained) -> None:
    model = trained.model
    assert (model["version"], model["status"], model["delay_days"]) == (1, "candidate", 7)
    assert (model["trained_since"], model["trained_until"]) == (SINCE.isoformat(), UNTIL.isoformat())
    assert model["features"] == list(FEATURES)
    assert model["params"] in GRID
    assert set(model["metrics"]) == {"validation", "training_rows", "training_frauds", "folds"}
    assert set(model["metrics"]["validation"]) == METRICS
    assert model["metrics"]["folds"] == 4
    async with trained.owner.transaction() as connection:
        window = await connection.fetchrow(
            "SELECT count(*) AS rows, count(*) FILTER (WHERE fraud) AS frauds FROM risk_history "
            "WHERE merchant_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
            trained.merchant_id,
            SINCE,
            UNTIL,
        )
        stored = await connection.fetchrow("SELECT file_name, sha256, reference FROM risk_models WHERE version = 1")
    assert (model["metrics"]["training_rows"], model["metrics"]["training_frauds"]) == (window["rows"], window["frauds"])
    assert window["frauds"] > 0
    content = (trained.models_dir / stored["file_name"]).read_bytes()
    assert hashlib.sha256(content).hexdigest() == stored["sha256"] == model["sha256"]
    assert stored["file_name"] == f"model-{model['sha256'][:24]}.json"
    assert set(stored["reference"]) == set(FEATURES)
    # Validation found what the simulator's frauds look like.
    assert model["metrics"]["validation"]["auc_roc"] > 0.8


@pytest.mark.processes
async def test_a_model_is_evaluated_on_the_week_after_the_delay(trained: Trained) -> None:
    window = Window(livemode=False, merchant_id=trained.merchant_id)
    metrics = await evaluate_model(trained.owner, trained.models_dir, window, 1, start=None, test_days=7, delay_days=7)
    assert metrics["test_since"] == (UNTIL + timedelta(days=7)).isoformat()
    assert metrics["test_until"] == (UNTIL + timedelta(days=14)).isoformat()
    assert metrics["model"] == 1
    assert 0 < metrics["frauds"] < metrics["transactions"]
    assert metrics["auc_roc"] > 0.8
    assert metrics["average_precision"] > 2 * metrics["frauds"] / metrics["transactions"]  # far better than chance
    for name in METRICS:
        assert 0 <= metrics[name] <= 1

    ran = await run_bastion(
        *("risk", "evaluate", "--model", "1", "--merchant", trained.merchant_id, "--json"), env=trained.database.env()
    )
    assert ran.returncode == 0, ran.stderr
    printed = json.loads(ran.stdout)
    assert set(printed) >= METRICS
    assert printed == metrics


async def test_a_window_without_fraud_is_refused(trained: Trained, tmp_path: Path) -> None:
    quiet = await new_merchant(trained.owner)
    rows = [f"{n},2018-05-{1 + n % 28:02d} 12:00:00,{n % 7},{n % 5},{10 + n}.00,0,0,0,0" for n in range(200)]
    path = write_lines(tmp_path / "quiet.csv", HEADER, *rows)
    await import_history(trained.owner, path, Tenant(quiet, livemode=False), on_progress=lambda _: None, now=datetime.now(UTC))
    env = trained.database.env()
    ran = await bastion_in_process(
        *("risk", "train", "--since", "2018-05-15", "--until", "2018-05-22", "--merchant", quiet), env=env
    )
    assert ran.returncode == 1
    assert ran.stderr == "error: the training window or the weeks before it hold no fraud to learn from\n"
    evaluated = await bastion_in_process(
        *("risk", "evaluate", "--model", "1", "--start", "2018-05-01", "--merchant", quiet), env=env
    )
    assert evaluated.returncode == 1
    assert evaluated.stderr == "error: the test window 2018-05-08 to 2018-05-15 holds no fraud, or nothing else\n"
    async with trained.owner.transaction() as connection:
        assert await connection.fetchval("SELECT count(*) FROM risk_models") == 1
    with pytest.raises(NotEnoughHistory):
        await train_model(
            trained.owner,
            Tenant(ledger.PLATFORM_MERCHANT_ID, livemode=True),
            Actor(id="test"),
            trained.models_dir,
            Window(livemode=False, merchant_id=quiet),
            since=datetime(2018, 5, 15, tzinfo=UTC),
            until=datetime(2018, 5, 22, tzinfo=UTC),
            delay_days=7,
        )


async def test_an_unknown_model_is_not_evaluated(trained: Trained) -> None:
    ran = await bastion_in_process("risk", "evaluate", "--model", "9", "--json", env=trained.database.env())
    assert ran.returncode == 1
    assert ran.stderr == "error: No such model version: 9\n"


def _document(content: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(content)
    return loaded


# What could stand where the registered model file should: the file's content (None: no file)
# and the hash the registry holds.
DAMAGES = {
    "missing": lambda content, sha256: (None, sha256),
    "altered": lambda content, sha256: (content + b" ", sha256),
    "not JSON": lambda content, sha256: b"model",
    "a JSON list": lambda content, sha256: b"[]",
    "another format": lambda content, sha256: json.dumps(_document(content) | {"format": "other/1"}).encode(),
    "no booster": lambda content, sha256: json.dumps({k: v for k, v in _document(content).items() if k != "booster"}).encode(),
    "a broken booster": lambda content, sha256: json.dumps(_document(content) | {"booster": "tree\nnonsense"}).encode(),
}


async def test_the_registered_model_file_loads_and_scores(trained: Trained) -> None:
    path = trained.models_dir / f"model-{trained.model['sha256'][:24]}.json"
    scorer = read_model(1, path, trained.model["sha256"])
    assert scorer.features == list(FEATURES)
    row = np.full(len(FEATURES), np.nan)
    row[: FEATURES.index("customer_known_frauds_30d") + 1] = 1.0
    scored = scorer.score(row)
    assert 0 <= scored.score <= 100
    assert len(scored.contributions) == 5
    with pytest.raises(ModelUnusable, match=r"^model 1: its file is missing$"):
        read_model(1, path.with_name("gone.json"), trained.model["sha256"])


@pytest.mark.parametrize("damage", list(DAMAGES))
async def test_a_model_file_that_is_not_the_registered_model_is_refused(trained: Trained, damage: str) -> None:
    content = (trained.models_dir / f"model-{trained.model['sha256'][:24]}.json").read_bytes()
    damaged = DAMAGES[damage](content, trained.model["sha256"])
    given, sha256 = damaged if isinstance(damaged, tuple) else (damaged, hashlib.sha256(damaged).hexdigest())
    with pytest.raises(ModelUnusable, match=r"^model 1: "):
        Scorer.load(1, given, sha256)
