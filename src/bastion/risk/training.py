"""Training and evaluating fraud models on the stored history, for the CLI (docs/risk-ml.md):
the history read for the window, its features computed once, then `learning`'s protocol."""

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bastion.platform.db import Actor, Database, Tenant
from bastion.risk import learning_repository as repository
from bastion.risk.errors import NotEnoughHistory
from bastion.risk.learning import LabelledSet, history_needed, labelled_set, measure, train
from bastion.risk.models import model, read_model, register


@dataclass(frozen=True, slots=True)
class Window:
    """Which stored history a training or an evaluation reads: one mode, every merchant or one."""

    livemode: bool
    merchant_id: str | None


async def _labelled(database: Database, window: Window, since: datetime, until: datetime, delay_days: int) -> LabelledSet:
    async with database.connection() as connection:
        rows = await repository.history_between(
            connection, livemode=window.livemode, since=since, until=until, merchant_id=window.merchant_id
        )
    return await asyncio.to_thread(labelled_set, rows, delay_days=delay_days)


async def train_model(
    database: Database,
    tenant: Tenant,
    actor: Actor,
    models_dir: Path,
    window: Window,
    *,
    since: datetime,
    until: datetime,
    delay_days: int,
) -> dict[str, Any]:
    """A model trained on [since, until) of `window`'s history, registered as a new candidate
    (audited under `tenant`, the platform's)."""
    first, last = history_needed(since, until, delay_days=delay_days)
    data = await _labelled(database, window, first, last, delay_days)
    trained = await asyncio.to_thread(train, data, since, until, delay_days=delay_days)
    async with database.unit_of_work(tenant, actor) as uow:
        return await register(uow, trained, models_dir, since=since, until=until, delay_days=delay_days)


async def evaluate_model(
    database: Database, models_dir: Path, window: Window, version: int, *, start: datetime | None, test_days: int, delay_days: int
) -> dict[str, Any]:
    """The Handbook's metrics of model `version` on the `test_days` days that begin `delay_days`
    after `start` (default: the end of its training window)."""
    async with database.connection() as connection:
        row = await model(connection, version)
    scorer = await asyncio.to_thread(read_model, version, models_dir / row["file_name"], row["sha256"])
    test_since = (start or row["trained_until"]) + timedelta(days=delay_days)
    test_until = test_since + timedelta(days=test_days)
    data = await _labelled(
        database, window, test_since - timedelta(days=30 + scorer.delay_days + 1), test_until, scorer.delay_days
    )
    mask = data.between(test_since, test_until)
    if not data.fraud[mask].any() or data.fraud[mask].all():
        raise NotEnoughHistory(f"the test window {test_since:%Y-%m-%d} to {test_until:%Y-%m-%d} holds no fraud, or nothing else")
    metrics = measure(data, mask, scorer.raw_scores(data.features[mask]))
    return metrics | {
        "model": version,
        "test_since": test_since.isoformat(),
        "test_until": test_until.isoformat(),
        "transactions": int(mask.sum()),
        "frauds": int(data.fraud[mask].sum()),
    }
