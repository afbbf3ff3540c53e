"""Training and evaluating fraud models on the labelled history, by the Fraud Detection Handbook's
protocol (docs/risk-ml.md, Training and Evaluation): hyperparameters chosen by prequential
validation on the weeks before the training window, never on the test window; a LightGBM model
trained on the window; its scores calibrated on the validation folds' held-out predictions; the
Handbook's metrics (AUC ROC, average precision, card precision top-100 per day).

Pure over arrays: `labelled_set` turns history rows into features once, every step after reads them."""

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import lightgbm
import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, roc_auc_score

from bastion.risk.errors import NotEnoughHistory
from bastion.risk.features import DAY_S, FEATURES, SIGNALS, Array, History, Ints, Transactions, codes, feature_matrix, signal_row
from bastion.risk.scoring import MODEL_FORMAT, bin_shares

FOLDS = 4
FOLD_SHIFT_DAYS = 7
TOP_CARDS = 100
REFERENCE_BINS = 10
# Hyperparameters tried by prequential validation: tree size, leaf support and rounds.
GRID: tuple[dict[str, Any], ...] = tuple(
    {"num_leaves": leaves, "min_data_in_leaf": support, "num_boost_round": rounds, "learning_rate": 0.05}
    for leaves in (7, 31)
    for support in (20, 100)
    for rounds in (100, 300)
)
_FIXED = {
    "objective": "binary",
    "feature_fraction": 0.8,
    "verbose": -1,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    # One thread: deterministic, and no OpenMP threads spinning against each other on a busy machine
    # (a small training took 87 s with two threads beside other work, 12 s with one).
    "num_threads": 1,
}


@dataclass(frozen=True, slots=True)
class LabelledSet:
    """History rows in time order with their features as of each row's time."""

    seconds: Ints
    customer: Ints
    fraud: npt.NDArray[np.int8]
    features: Array

    def between(self, since: datetime, until: datetime) -> npt.NDArray[np.bool_]:
        return (self.seconds >= int(since.timestamp())) & (self.seconds < int(until.timestamp()))


def labelled_set(rows: Sequence[Mapping[str, Any]], *, delay_days: int) -> LabelledSet:
    """`rows` as `history_between` reads them."""
    seconds = np.fromiter((row["seconds"] for row in rows), dtype=np.int64, count=len(rows))
    customer = codes([row["customer"] for row in rows])
    terminal = codes([row["terminal"] for row in rows])
    amount = np.fromiter((row["amount"] for row in rows), dtype=np.float64, count=len(rows))
    fraud = np.fromiter((row["fraud"] for row in rows), dtype=np.int8, count=len(rows))
    signals = np.array([signal_row(row["signals"] or {}) for row in rows], dtype=np.float64).reshape(len(rows), len(SIGNALS))
    known = fraud.astype(np.float64)
    features = feature_matrix(
        Transactions(customer, terminal, seconds, amount, signals),
        History.of(customer, seconds, amount, known),
        History.of(terminal, seconds, amount, known),
        delay_days=delay_days,
    )
    return LabelledSet(seconds, customer, fraud, features)


def history_needed(since: datetime, until: datetime, *, delay_days: int) -> tuple[datetime, datetime]:
    """The history a training on [since, until) reads: its validation folds before it, and 30
    days and the delay of look-back before the earliest fold."""
    earliest = since - timedelta(days=delay_days + FOLD_SHIFT_DAYS + (FOLDS - 1) * FOLD_SHIFT_DAYS)
    return earliest - timedelta(days=30 + delay_days + 1), until


@dataclass(frozen=True, slots=True)
class Trained:
    """A model and what it is: its file's bytes and the registry's description of it."""

    content: bytes
    sha256: str
    features: list[str]
    params: dict[str, Any]
    metrics: dict[str, Any]
    # Per feature, the training window's bins (`reference_bins`), for drift.
    reference: dict[str, dict[str, list[float]]]


def train(data: LabelledSet, since: datetime, until: datetime, *, delay_days: int) -> Trained:
    """The best of GRID by mean average precision over the prequential folds, trained on [since, until)."""
    window = until - since
    folds = [(since - timedelta(days=delay_days + FOLD_SHIFT_DAYS + fold * FOLD_SHIFT_DAYS), window) for fold in range(FOLDS)]
    results = []
    for params in GRID:
        fold_metrics, held_out = [], []
        for fold_start, fold_window in folds:
            train_mask = data.between(fold_start, fold_start + fold_window)
            test_start = fold_start + fold_window + timedelta(days=delay_days)
            test_mask = data.between(test_start, test_start + timedelta(days=FOLD_SHIFT_DAYS))
            if not _learnable(data, train_mask) or not _learnable(data, test_mask):
                continue
            booster = _fit(data, train_mask, params)
            raw = np.asarray(booster.predict(data.features[test_mask], raw_score=True), dtype=np.float64)
            fold_metrics.append(measure(data, test_mask, raw))
            held_out.append((raw, data.fraud[test_mask]))
        if fold_metrics:
            mean = {name: float(np.mean([metrics[name] for metrics in fold_metrics])) for name in fold_metrics[0]}
            results.append((mean["average_precision"], params, mean, held_out))
    final_mask = data.between(since, until)
    if not results or not _learnable(data, final_mask):
        raise NotEnoughHistory("the training window or the weeks before it hold no fraud to learn from")
    _, best, validation, held_out = max(results, key=lambda result: result[0])
    booster = _fit(data, final_mask, best)
    calibration = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip", increasing=True)
    calibration.fit(np.concatenate([raw for raw, _ in held_out]), np.concatenate([labels for _, labels in held_out]))
    document = {
        "format": MODEL_FORMAT,
        "features": list(FEATURES),
        "delay_days": delay_days,
        "params": best,
        "calibration": {"raw": calibration.X_thresholds_.tolist(), "probability": calibration.y_thresholds_.tolist()},
        "booster": booster.model_to_string(),
    }
    content = json.dumps(document, sort_keys=True).encode()
    metrics = {
        "validation": validation,
        "training_rows": int(final_mask.sum()),
        "training_frauds": int(data.fraud[final_mask].sum()),
        "folds": len(held_out),
    }
    reference = reference_bins(data.features[final_mask])
    return Trained(content, hashlib.sha256(content).hexdigest(), list(FEATURES), best, metrics, reference)


def _learnable(data: LabelledSet, mask: npt.NDArray[np.bool_]) -> bool:
    labels = data.fraud[mask]
    return bool(labels.any()) and not bool(labels.all())


def _fit(data: LabelledSet, mask: npt.NDArray[np.bool_], params: Mapping[str, Any]) -> lightgbm.Booster:
    settings = {key: value for key, value in params.items() if key != "num_boost_round"} | _FIXED
    dataset = lightgbm.Dataset(data.features[mask], data.fraud[mask], feature_name=list(FEATURES), free_raw_data=True)
    return lightgbm.train(settings, dataset, num_boost_round=int(params["num_boost_round"]))


def measure(data: LabelledSet, mask: npt.NDArray[np.bool_], scores: Array) -> dict[str, float]:
    """The Handbook's three metrics of `scores` for the rows in `mask`."""
    labels = data.fraud[mask]
    return {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "average_precision": float(average_precision_score(labels, scores)),
        "card_precision_top_100": card_precision_top_k(data.seconds[mask], data.customer[mask], labels, scores),
    }


def card_precision_top_k(seconds: Ints, card: Ints, labels: npt.NDArray[np.int8], scores: Array, *, k: int = TOP_CARDS) -> float:
    """Per day, the share of fraud among the k cards with the highest score (a card's score is
    its day's highest), cards found in an earlier day's k left out; averaged over the days."""
    day = seconds // DAY_S
    found: set[int] = set()
    precisions = []
    for today in np.unique(day):
        mask = (day == today) & ~np.isin(card, list(found))
        cards, position = np.unique(card[mask], return_inverse=True)
        best = np.full(len(cards), -np.inf)
        np.maximum.at(best, position, scores[mask])
        compromised = np.zeros(len(cards), dtype=np.int8)
        np.maximum.at(compromised, position, labels[mask])
        top = np.argsort(-best, kind="stable")[:k]
        caught = cards[top][compromised[top] == 1]
        precisions.append(len(caught) / k)
        found.update(caught.tolist())
    return float(np.mean(precisions)) if precisions else 0.0


def reference_bins(features: Array) -> dict[str, dict[str, list[float]]]:
    """Per feature, the training window's deciles and the share of rows in each bin (the last
    bin for missing values): what live traffic's drift is measured against."""
    reference = {}
    for index, name in enumerate(FEATURES):
        column = features[:, index]
        present = column[~np.isnan(column)]
        edges = np.unique(np.quantile(present, np.linspace(0, 1, REFERENCE_BINS + 1)[1:-1])) if len(present) else np.array([])
        reference[name] = {"edges": edges.tolist(), "shares": bin_shares(column, edges).tolist()}
    return reference
