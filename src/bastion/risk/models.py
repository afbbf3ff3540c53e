"""The fraud models' lifecycle (docs/risk-ml.md, Lifecycle): the registry of trained versions
and their files, promotion of a champion (it scores every decision) and a challenger (it scores
in shadow), rollback, the shelf that keeps the serving models loaded in each deciding process,
each decision's features read as of its time, and the daily drift of those features.

The platform's, not a merchant's: models learn from every merchant's history, and each change
is audited under the platform's tenant."""

import asyncio
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import Counter, Gauge

from bastion import audit
from bastion.kernel.errors import ResourceMissing
from bastion.platform.db import AnyRow, Connection, Database, Tenant, UnitOfWork
from bastion.platform.logging import get_logger
from bastion.risk import learning_repository as repository
from bastion.risk.errors import ModelChangeRefused
from bastion.risk.features import DAY_S, DELAY_DAYS_DEFAULT, SIGNALS, Array, History, Transactions, feature_matrix, signal_row
from bastion.risk.scoring import ModelUnusable, Scorer, population_stability

if TYPE_CHECKING:
    from bastion.risk.learning import Trained  # training's, with scikit-learn: only the CLI registers

ENTITY_ROWS_MAX = 2_000  # per customer and per terminal, the most recent, read for one decision
DRIFT_ALERT_PSI = 0.2
DRIFT_ROWS_MAX = 200_000  # a day's scored decisions read for its drift
DRIFT_SCORED_MIN = 100  # fewer, and a day's shares say nothing about a shift
_log = get_logger(__name__)


def model_resource(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "version": row["version"],
        "status": row["status"],
        "sha256": row["sha256"],
        "trained_since": row["trained_since"].isoformat(),
        "trained_until": row["trained_until"].isoformat(),
        "delay_days": row["delay_days"],
        "features": row["features"],
        "params": row["params"],
        "metrics": row["metrics"],
        "created": row["created_at"].isoformat(),
        "championed": None if row["championed_at"] is None else row["championed_at"].isoformat(),
    }


async def register(
    uow: UnitOfWork, trained: "Trained", models_dir: Path, *, since: datetime, until: datetime, delay_days: int
) -> dict[str, Any]:
    """A new candidate version: its file written (content-addressed, so never overwritten by
    another model) before its row, which names the file's hash."""
    file_name = f"model-{trained.sha256[:24]}.json"
    _write_file(models_dir / file_name, trained.content)
    await repository.lock_models(uow.connection)
    row = await repository.insert_model(
        uow.connection,
        {
            "file_name": file_name,
            "sha256": trained.sha256,
            "trained_since": since,
            "trained_until": until,
            "delay_days": delay_days,
            "features": trained.features,
            "reference": trained.reference,
            "params": trained.params,
            "metrics": trained.metrics,
            "created_at": uow.now(),
        },
    )
    resource = model_resource(row)
    audit.record(
        uow,
        action_type="risk.model.create",
        resource_type="risk.model",
        resource_id=f"model:{row['version']}",
        before=None,
        after=resource,
    )
    return resource


def _write_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(content)
    os.replace(partial, path)


async def models(connection: Connection) -> list[dict[str, Any]]:
    return [model_resource(row) for row in await repository.models(connection)]


async def model(connection: Connection, version: int) -> AnyRow:
    row = await repository.model(connection, version)
    if row is None:
        raise ResourceMissing(f"No such model version: {version}", param="version")
    return row


async def promote(uow: UnitOfWork, version: int) -> dict[str, Any]:
    """`version` becomes the champion; the champion before it retires (and is what a rollback restores)."""
    await repository.lock_models(uow.connection)
    target = await model(uow.connection, version)
    if target["status"] == "champion":
        raise ModelChangeRefused(f"Model {version} is the champion already", param="version")
    current = await repository.model_in_status(uow.connection, "champion")
    if current is not None:
        retired = await repository.set_model_status(uow.connection, current["version"], "retired")
        _audit(uow, "risk.model.retire", current, retired)
    row = await repository.crown(uow.connection, version, None if current is None else current["version"], uow.now())
    _audit(uow, "risk.model.promote", target, row)
    return model_resource(row)


async def shadow(uow: UnitOfWork, version: int) -> dict[str, Any]:
    """`version` becomes the challenger, scoring in shadow; the challenger before it goes back to candidate."""
    await repository.lock_models(uow.connection)
    target = await model(uow.connection, version)
    if target["status"] in ("champion", "challenger"):
        raise ModelChangeRefused(f"Model {version} is the {target['status']} already", param="version")
    current = await repository.model_in_status(uow.connection, "challenger")
    if current is not None:
        unshadowed = await repository.set_model_status(uow.connection, current["version"], "candidate")
        _audit(uow, "risk.model.unshadow", current, unshadowed)
    row = await repository.set_model_status(uow.connection, version, "challenger")
    _audit(uow, "risk.model.shadow", target, row)
    return model_resource(row)


async def rollback(uow: UnitOfWork) -> dict[str, Any]:
    """Undo the latest promotion not undone yet: the champion it replaced is the champion again,
    the one it made retires. Rollbacks in a row go back one promotion each."""
    await repository.lock_models(uow.connection)
    promotion = await repository.latest_promotion(uow.connection)
    if promotion is None:
        raise ModelChangeRefused("There is no promotion to roll back", param="version")
    if promotion["replaced"] is None:
        raise ModelChangeRefused(
            f"Model {promotion['version']} was the first champion: there is none to go back to", param="version"
        )
    current = await model(uow.connection, promotion["version"])
    previous = await model(uow.connection, promotion["replaced"])
    await repository.roll_back_promotion(uow.connection, promotion["id"], uow.now())
    retired = await repository.set_model_status(uow.connection, current["version"], "retired")
    _audit(uow, "risk.model.rollback", current, retired)
    row = await repository.set_model_status(uow.connection, previous["version"], "champion")
    _audit(uow, "risk.model.restore", previous, row)
    return model_resource(row)


def _audit(uow: UnitOfWork, action: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> None:
    """One model's change, before and after."""
    audit.record(
        uow,
        action_type=action,
        resource_type="risk.model",
        resource_id=f"model:{after['version']}",
        before=model_resource(before),
        after=model_resource(after),
    )


# Serving.


@dataclass(frozen=True, slots=True)
class Serving:
    """The models a decision uses: `unusable` names a champion that could not be loaded."""

    champion: Scorer | None
    challenger: Scorer | None
    unusable: str | None = None


NO_MODELS = Serving(None, None)


class ModelShelf:
    """The champion and challenger loaded in this process, looked up in the registry at most
    every `refresh_s` seconds; a file is read and checked once per version."""

    def __init__(self, database: Database, models_dir: Path, *, refresh_s: float) -> None:
        self.database = database
        self.models_dir = models_dir
        self.refresh_s = refresh_s
        self._serving = NO_MODELS
        self._checked_at = -float("inf")
        self._loaded: dict[tuple[int, str], Scorer] = {}
        self._lock = asyncio.Lock()
        self.load_failures = Counter(
            "bastion_risk_model_load_failures", "Model files that could not be loaded", ["version"], registry=None
        )
        self.scores = Counter(
            "bastion_risk_model_scores", "Decisions scored, by model and role", ["version", "role"], registry=None
        )
        self.drift = Gauge(
            "bastion_risk_feature_psi",
            "The latest daily population stability index per feature",
            ["version", "feature"],
            registry=None,
        )

    def collectors(self) -> tuple[Counter | Gauge, ...]:
        return self.load_failures, self.scores, self.drift

    async def serving(self) -> Serving:
        if time.monotonic() - self._checked_at < self.refresh_s:
            return self._serving
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.refresh_s:
                self._serving = await self._refresh()
                self._checked_at = time.monotonic()
        return self._serving

    async def _refresh(self) -> Serving:
        async with self.database.connection() as connection:
            rows = {row["status"]: row for row in await repository.serving_models(connection)}
            champion = rows.get("champion")
            if champion is not None:
                for drift in await repository.drift(connection, champion["version"], len(champion["features"])):
                    self.drift.labels(str(drift["version"]), drift["feature"]).set(drift["psi"])
        loaded: dict[str, Scorer | None] = {}
        unusable = None
        for status, row in rows.items():
            try:
                loaded[status] = await self._load(row)
            except ModelUnusable as error:
                loaded[status] = None
                self.load_failures.labels(str(row["version"])).inc()
                _log.error("risk_model_unusable", version=row["version"], role=status, error=str(error))
                if status == "champion":
                    unusable = str(error)
        return Serving(loaded.get("champion"), loaded.get("challenger"), unusable)

    async def _load(self, row: AnyRow) -> Scorer:
        key = (row["version"], row["sha256"])
        if key not in self._loaded:
            path = self.models_dir / row["file_name"]
            self._loaded = {key: await asyncio.to_thread(read_model, row["version"], path, row["sha256"])} | {
                kept: scorer for kept, scorer in self._loaded.items() if kept[0] != row["version"]
            }
        return self._loaded[key]


def read_model(version: int, path: Path, sha256: str) -> Scorer:
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        return Scorer.load(version, None, sha256)
    except OSError as error:
        raise ModelUnusable(f"model {version}: {path}: {error.strerror}") from None
    return Scorer.load(version, content, sha256)


# Features as of a decision's time.


@dataclass(frozen=True, slots=True)
class Entities:
    """Whom a transaction's features are counted for (docs/risk-ml.md, Bastion's payments)."""

    customer: str
    terminal: str


async def features_as_of(
    connection: Connection,
    tenant: Tenant,
    entities: Entities,
    *,
    at: datetime,
    amount: float,
    signals: Mapping[str, object],
    delay_days: int = DELAY_DAYS_DEFAULT,
) -> Array:
    """One transaction's features from its customer's and terminal's stored rows: the serving
    side of `feature_matrix`, which training calls over the whole history."""
    seconds = int(at.timestamp())
    since = datetime.fromtimestamp(seconds - (delay_days + 30) * DAY_S - 1, UTC)
    rows = await repository.entity_history(
        connection,
        tenant,
        customer_key=entities.customer,
        terminal_key=entities.terminal,
        since=since,
        customer_until=datetime.fromtimestamp(seconds + 1, UTC),
        terminal_until=datetime.fromtimestamp(seconds - delay_days * DAY_S + 1, UTC),
        limit=ENTITY_ROWS_MAX,
    )
    sides = {side: [row for row in rows if row["side"] == side] for side in ("customer", "terminal")}
    histories = {
        side: History.of(
            np.zeros(len(picked), dtype=np.int64),
            np.array([row["seconds"] for row in picked], dtype=np.int64),
            np.array([row["amount"] for row in picked], dtype=np.float64),
            np.array([float(row["fraud"]) for row in picked], dtype=np.float64),
        )
        for side, picked in sides.items()
    }
    one = np.zeros(1, dtype=np.int64)
    transaction = Transactions(
        one,
        one,
        np.array([seconds], dtype=np.int64),
        np.array([amount], dtype=np.float64),
        np.array([signal_row(dict(signals))], dtype=np.float64).reshape(1, len(SIGNALS)),
    )
    matrix = feature_matrix(transaction, histories["customer"], histories["terminal"], delay_days=delay_days)
    row: Array = matrix[0]
    return row


# Drift.


async def compute_drift(database: Database, day: date, now: datetime, *, scored_min: int = DRIFT_SCORED_MIN) -> dict[str, float]:
    """The champion's drift on `day` (UTC), stored per feature; a feature past DRIFT_ALERT_PSI is
    logged as a warning. Empty when there is no champion or it scored fewer than `scored_min`
    decisions that day."""
    async with database.transaction() as connection:
        champion = await repository.model_in_status(connection, "champion")
        if champion is None:
            return {}
        since = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        rows = await repository.scored_features(connection, champion["version"], since, since + timedelta(days=1), DRIFT_ROWS_MAX)
        if len(rows) < max(scored_min, 1):
            return {}
        names: list[str] = champion["features"]
        live = np.array([[_number(row["features"].get(name)) for name in names] for row in rows], dtype=np.float64)
        psi = population_stability(names, champion["reference"], live)
        await repository.upsert_drift(connection, champion["version"], day, scored=len(rows), psi=psi, at=now)
    for feature, value in psi.items():
        if value > DRIFT_ALERT_PSI:
            _log.warning("risk_feature_drift", version=champion["version"], day=day.isoformat(), feature=feature, psi=value)
    return psi


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else np.nan


# A decision's model verdict.

TERMINAL_METADATA_KEYS = ("terminal_id", "store_id")


def terminal_of(metadata: Mapping[str, str]) -> str | None:
    """The terminal a payment's metadata names (`terminal_id`, else `store_id`), or None."""
    for key in TERMINAL_METADATA_KEYS:
        if metadata.get(key):
            return f"{key.removesuffix('_id')}:{metadata[key]}"
    return None


def entities_of(tenant: Tenant, *, customer_id: str | None, card_fingerprint: str, terminal: str | None) -> Entities:
    """A payment's customer (its customer, else its card) and terminal (named in its metadata, else its merchant)."""
    customer = f"customer:{customer_id}" if customer_id else f"card:{card_fingerprint}"
    return Entities(customer=customer, terminal=terminal or f"merchant:{tenant.merchant_id}")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the models said of one attempt: the champion's score and level (None and
    `not_assessed` when it could not be loaded), and the record the decision keeps."""

    score: int | None
    level: str | None
    version: int | None
    record: dict[str, Any] | None


NO_VERDICT = Verdict(None, None, None, None)


async def judge(uow: UnitOfWork, serving: Serving, entities: Entities, *, amount: float, values: Mapping[str, object]) -> Verdict:
    """The champion's and the challenger's scores of an attempt, from its features as of now."""
    scorers = [scorer for scorer in (serving.champion, serving.challenger) if scorer is not None]
    features: dict[int, Array] = {}
    for scorer in scorers:
        if scorer.delay_days not in features:
            features[scorer.delay_days] = await features_as_of(
                uow.connection, uow.tenant, entities, at=uow.now(), amount=amount, signals=values, delay_days=scorer.delay_days
            )
    record: dict[str, Any] = {}
    score, level, version = None, None, None
    if serving.champion is not None:
        row = features[serving.champion.delay_days]
        scored = serving.champion.score(row)
        score, level, version = scored.score, scored.level, serving.champion.version
        record = {
            "version": version,
            "score": score,
            "probability": round(scored.probability, 6),
            "contributions": scored.contributions,
            "features": {name: _json_number(value) for name, value in zip(serving.champion.features, row, strict=True)},
        }
    elif serving.unusable is not None:
        level = "not_assessed"
        record["unusable"] = serving.unusable
    if serving.challenger is not None:
        shadowed = serving.challenger.score(features[serving.challenger.delay_days])
        record["challenger"] = {"version": serving.challenger.version, "score": shadowed.score, "level": shadowed.level}
    return Verdict(score, level, version, record or None)


async def remember_attempt(
    uow: UnitOfWork, attempt_id: str, entities: Entities, *, amount: float, values: Mapping[str, object]
) -> None:
    """The attempt in the history, for later decisions' features and later trainings; unlabelled
    until a dispute, a refund or a review says fraud (`label_fraud`)."""
    await repository.insert_payment_history(
        uow.connection,
        uow.tenant,
        {
            "transaction_id": attempt_id,
            "occurred_at": uow.now(),
            "customer_key": entities.customer,
            "terminal_key": entities.terminal,
            "amount": Decimal(str(round(amount, 2))),
            "signals": {name: _json_number(value) for name, value in zip(SIGNALS, signal_row(dict(values)), strict=True)},
        },
    )


async def label_fraud(uow: UnitOfWork, attempt_id: str) -> None:
    """The attempt (a charge) was fraud: disputed as fraudulent, refunded as fraudulent, or its
    payment canceled as fraudulent (a review's rejection)."""
    await repository.label_fraud(uow.connection, uow.tenant, attempt_id, uow.now())


def _json_number(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)
