"""A trained model in the process that decides (docs/risk-ml.md, Serving): loaded from its file
only when the file's SHA-256 is the one the registry stored, scoring one attempt's features with
LightGBM's per-feature contributions (their sum is the raw score), calibrated into a probability
of fraud on the training's held-out folds, and shown as `risk_score` 0 to 100."""

import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.risk.features import Array

if TYPE_CHECKING:
    import lightgbm

MODEL_FORMAT = "bastion-risk-model/1"
CONTRIBUTIONS_SHOWN = 5
# risk_level from the calibrated probability (docs/risk-ml.md, Serving).
ELEVATED_FROM = 20
HIGHEST_FROM = 60
_PSI_FLOOR = 1e-4


class ModelUnusable(Exception):
    """A model file missing, altered or not a model: the engine decides on rules alone."""


@dataclass(frozen=True, slots=True)
class Scored:
    score: int
    level: str
    probability: float
    contributions: list[dict[str, Any]]


class Scorer:
    def __init__(self, version: int, document: dict[str, Any]) -> None:
        self.version = version
        self.features: list[str] = document["features"]
        self.delay_days: int = document["delay_days"]
        self._raw = np.asarray(document["calibration"]["raw"], dtype=np.float64)
        self._probability = np.asarray(document["calibration"]["probability"], dtype=np.float64)
        self._booster: lightgbm.Booster = _lightgbm().Booster(model_str=document["booster"])

    @classmethod
    def load(cls, version: int, content: bytes | None, sha256: str) -> "Scorer":
        """The model in `content` (None: the file is missing), if its hash is `sha256`."""
        if content is None:
            raise ModelUnusable(f"model {version}: its file is missing")
        if hashlib.sha256(content).hexdigest() != sha256:
            raise ModelUnusable(f"model {version}: its file does not match the hash the registry stored")
        try:
            document = json.loads(content)
            if not isinstance(document, dict) or document.get("format") != MODEL_FORMAT:
                raise ModelUnusable(f"model {version}: not a {MODEL_FORMAT} file")
            return cls(version, document)
        except (ValueError, KeyError, TypeError, _lightgbm().basic.LightGBMError) as error:
            raise ModelUnusable(f"model {version}: {error}") from None

    def raw_scores(self, rows: Array) -> Array:
        """The model's raw scores (log-odds) of many rows at once, for evaluation: ranked as the
        calibrated probabilities are, without the ties calibration's steps make."""
        return np.asarray(self._booster.predict(rows, raw_score=True), dtype=np.float64)

    def score(self, row: Array) -> Scored:
        """`row`: one attempt's features, in `features` order."""
        # One thread: for one row, OpenMP's threads cost more than the trees (11 ms p50 against 0.2 ms).
        contributions = self._booster.predict(row.reshape(1, -1), pred_contrib=True, num_threads=1)[0]
        probability = float(np.interp(float(contributions.sum()), self._raw, self._probability))
        score = min(100, max(0, round(probability * 100)))
        top = np.argsort(-np.abs(contributions[:-1]), kind="stable")[:CONTRIBUTIONS_SHOWN]
        shown = [
            {"feature": self.features[index], "value": _finite(row[index]), "contribution": round(float(contributions[index]), 4)}
            for index in top
        ]
        return Scored(score, level_of(score), probability, shown)


def _lightgbm() -> Any:
    """LightGBM, imported where a model is loaded and not before: with it comes scikit-learn
    (about a second), which every `bastion` command would otherwise pay for, models or not."""
    import lightgbm

    return lightgbm


def level_of(score: int) -> str:
    if score >= HIGHEST_FROM:
        return "highest"
    return "elevated" if score >= ELEVATED_FROM else "normal"


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 4)


def bin_shares(column: Array, edges: Array) -> Array:
    """The share of values in each bin of `edges`, missing values last."""
    missing = np.isnan(column)
    counts = np.bincount(np.searchsorted(edges, column[~missing], side="right"), minlength=len(edges) + 1).astype(np.float64)
    counts = np.append(counts, missing.sum())
    return counts / max(len(column), 1)


def population_stability(names: list[str], reference: dict[str, dict[str, list[float]]], live: Array) -> dict[str, float]:
    """The population stability index of each feature: `live` rows (one column per name) against
    the training window's bins, sum((live - trained) * ln(live / trained)) over the bins."""
    drift = {}
    for index, name in enumerate(names):
        trained = np.maximum(np.asarray(reference[name]["shares"]), _PSI_FLOOR)
        seen = np.maximum(bin_shares(live[:, index], np.asarray(reference[name]["edges"])), _PSI_FLOOR)
        drift[name] = round(float(np.sum((seen - trained) * np.log(seen / trained))), 6)
    return drift
