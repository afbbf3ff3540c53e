"""Benchmark: the fraud models (issue 17, docs/risk-ml.md). On data sets made by the Fraud
Detection Handbook's simulator with its default settings, and by its baseline protocol: how fast
the history imports, how long a training takes, the Handbook's metrics on the test week, and how
long the decision path's model part takes. Over several simulator seeds, because a result that
holds on one seed only does not count.

Per seed, one scratch database (migrated like the tests') and one merchant:

- simulate: the Handbook's generator (5,000 customers, 10,000 terminals, 183 days from
  2018-04-01) with that seed, written to a temporary CSV file in the Handbook's format;
- import: the file into the merchant's test-mode history through `import_history`, timed;
- train: `train_model` on 2018-07-25 to 2018-08-01 with a 7-day delay (hyperparameters chosen by
  prequential validation on the weeks before it), timed; evaluate: `evaluate_model` on the 7
  test days after the delay (2018-08-08 to 2018-08-15);
- score: the model promoted and loaded from its file, its hash checked, as a deciding process
  loads its champion; then, for imported transactions of the test week drawn at random, each in
  a transaction of the merchant's as the app role: `features_as_of` at the transaction's time,
  then `Scorer.score`. Each row's features must equal those training computes for it
  (`feature_matrix` over the history), or the run fails.

`pgbench -N` on the first seed's database, after its import, is the anchor. Every loop is
bounded in count and time.

    python bench/risk_ml.py [--quick] [--seeds 0,1,2,3,4] [--scores 2000] [--database-url URL]

Writes bench/results/risk_ml.json and rewrites its own section of docs/benchmarks.md (`--quick`
is a smoke run in seconds: a small set, the first seed only, no pgbench, a temporary JSON).
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import uvloop

from bastion import bootstrap
from bastion.kernel.ids import new_id
from bastion.ledger import PLATFORM_MERCHANT_ID
from bastion.merchants import create_merchant
from bastion.platform.db import Actor, Database, ServiceRoles, Tenant
from bastion.platform.settings import Settings
from bastion.risk import learning_repository, models
from bastion.risk.features import Array
from bastion.risk.history import import_history
from bastion.risk.learning import labelled_set
from bastion.risk.models import Entities, features_as_of, read_model
from bastion.risk.scoring import Scorer
from bastion.risk.simulation import simulate
from bastion.risk.training import Window, evaluate_model, train_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.api and the test helpers
from bench.api import (
    BenchFailed,
    bounded_int,
    doc_markers,
    machine,
    metric_table,
    percentile_ms,
    pgbench_binary,
    run_and_report,
    run_pgbench,
    section_head,
    verdict,
)
from bench.ledger import revision
from tests.support.postgres import TestDatabase, migrated_database, server_url

SEEDS_DEFAULT = "0,1,2,3,4"
SEEDS_MAX = 10
SCORES_DEFAULT = 2_000
SCORES_MAX = 20_000
QUICK_SCORES = 200
WARMUP_SCORES = 50
SCORE_TIME_LIMIT_S = 120.0
PGBENCH_CLIENTS = 16  # as the other benchmarks' anchors
ACTOR = Actor(id="bench")
PLATFORM = Tenant(PLATFORM_MERCHANT_ID, livemode=True)  # model changes are audited under the platform, as the CLI does
FEATURE_TOLERANCE = 1e-9

# The issue's targets.
TARGET_AVERAGE_PRECISION_MIN = 0.70
TARGET_CARD_PRECISION_MIN = 0.31
TARGET_SCORE_P99_MS_MAX = 2.0
TARGET_IMPORT_ROWS_PER_S_MIN = 100_000

DOC_START, DOC_END = doc_markers("risk_ml")


@dataclass(frozen=True)
class Protocol:
    """The data set the simulator makes, and the windows trained and tested on."""

    customers: int
    terminals: int
    days: int
    start: date
    train_since: date
    train_until: date
    delay_days: int
    test_days: int

    def at(self, day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)

    def test_since(self) -> date:
        return self.train_until + timedelta(days=self.delay_days)

    def test_until(self) -> date:
        return self.test_since() + timedelta(days=self.test_days)

    def describe(self) -> dict[str, Any]:
        return {
            "customers": self.customers,
            "terminals": self.terminals,
            "days": self.days,
            "start": self.start.isoformat(),
            "train_since": self.train_since.isoformat(),
            "train_until": self.train_until.isoformat(),
            "delay_days": self.delay_days,
            "test_since": self.test_since().isoformat(),
            "test_until": self.test_until().isoformat(),
        }


# The Handbook's defaults (chapter 3.2) and its baseline protocol (chapter 3.4).
HANDBOOK = Protocol(
    customers=5_000,
    terminals=10_000,
    days=183,
    start=date(2018, 4, 1),
    train_since=date(2018, 7, 25),
    train_until=date(2018, 8, 1),
    delay_days=7,
    test_days=7,
)
# A tenth of the people over two months, the windows moved to fit: the validation folds reach
# 35 days before training.
QUICK = Protocol(
    customers=500,
    terminals=1_000,
    days=60,
    start=date(2018, 4, 1),
    train_since=date(2018, 5, 6),
    train_until=date(2018, 5, 13),
    delay_days=7,
    test_days=7,
)


@dataclass(frozen=True)
class Sample:
    """An imported transaction to score, and the features training computed for it."""

    customer: str
    terminal: str
    at: datetime
    amount: float
    expected: Array


def seeds_list(raw: str) -> list[int]:
    try:
        seeds = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of integers, e.g. 0,1,2") from None
    if not 1 <= len(seeds) <= SEEDS_MAX or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"1 to {SEEDS_MAX} distinct seeds, none negative")
    return seeds


async def _merchant(owner: Database) -> Tenant:
    tenant = Tenant(new_id("mer"), livemode=False)
    async with owner.unit_of_work(tenant, ACTOR) as uow:
        await create_merchant(uow, "Benchmark merchant")
    return tenant


async def _import(owner_url: str, path: Path) -> dict[str, Any]:
    owner = bootstrap.owner_database(owner_url)
    try:
        tenant = await _merchant(owner)
        started = time.perf_counter()
        imported = await import_history(owner, path, tenant, on_progress=lambda _sent: None, now=owner.clock.now())
        import_s = time.perf_counter() - started
    finally:
        await owner.dispose()
    return {
        "merchant_id": tenant.merchant_id,
        "rows": imported.rows,
        "frauds": imported.frauds,
        "import_s": round(import_s, 2),
        "import_rows_per_s": round(imported.rows / import_s),
    }


async def _champion(owner: Database, models_dir: Path, version: int) -> Scorer:
    """Model `version` promoted, then read from its file with its hash checked (`read_model`), as a
    deciding process loads its champion. Not through `ModelShelf` as the app role: the migration of
    9610e91 does not let that role read risk_model_drift, which the shelf reads with its champion."""
    async with owner.unit_of_work(PLATFORM, ACTOR) as uow:
        await models.promote(uow, version)
    async with owner.connection() as connection:
        champion = await learning_repository.model_in_status(connection, "champion")
    if champion is None or champion["version"] != version:
        raise BenchFailed(f"model {version} was promoted but is not the champion")
    return await asyncio.to_thread(read_model, version, models_dir / champion["file_name"], champion["sha256"])


async def _samples(owner: Database, window: Window, protocol: Protocol, seed: int, count: int) -> list[Sample]:
    """`count` transactions of the test days drawn at random, with their features as training
    computes them: over the history from the windows' reach before the test days."""
    since = protocol.at(protocol.test_since())
    async with owner.connection() as connection:
        rows = await learning_repository.history_between(
            connection,
            livemode=window.livemode,
            since=since - timedelta(days=30 + protocol.delay_days + 1),
            until=protocol.at(protocol.test_until()),
            merchant_id=window.merchant_id,
        )
    data = await asyncio.to_thread(labelled_set, rows, delay_days=protocol.delay_days)
    candidates = np.flatnonzero(data.seconds >= int(since.timestamp()))
    picked = np.random.default_rng(seed).choice(candidates, size=min(count, len(candidates)), replace=False)
    return [
        Sample(
            customer=rows[index]["customer"].split(":", 1)[1],  # history_between prefixes the merchant
            terminal=rows[index]["terminal"].split(":", 1)[1],
            at=datetime.fromtimestamp(int(data.seconds[index]), UTC),
            amount=float(rows[index]["amount"]),
            expected=data.features[index],
        )
        for index in picked.tolist()
    ]


async def _score_latency(scorer: Scorer, app: Database, tenant: Tenant, samples: Sequence[Sample]) -> dict[str, Any]:
    """The model part of a decision for each sample: its features read as of its time in a
    transaction of the merchant's, then its score. The first WARMUP_SCORES are not counted."""
    score_s: list[float] = []
    path_s: list[float] = []
    mismatches: list[str] = []
    deadline = time.monotonic() + SCORE_TIME_LIMIT_S
    for index, sample in enumerate(samples):
        if time.monotonic() > deadline:
            break
        async with app.unit_of_work(tenant, ACTOR) as uow:
            started = time.perf_counter()
            row = await features_as_of(
                uow.connection,
                tenant,
                Entities(customer=sample.customer, terminal=sample.terminal),
                at=sample.at,
                amount=sample.amount,
                signals={},
                delay_days=scorer.delay_days,
            )
            featured = time.perf_counter()
            scorer.score(row)
            scored = time.perf_counter()
        if index >= WARMUP_SCORES:
            score_s.append(scored - featured)
            path_s.append(scored - started)
        mismatches.extend(_mismatch(sample, row, scorer))
    if len(score_s) == 0:
        raise BenchFailed("no score measured within the time limit")
    if len(score_s) < len(samples) - WARMUP_SCORES:
        print(f"time limit of {SCORE_TIME_LIMIT_S:.0f} s reached: {len(score_s)} of {len(samples) - WARMUP_SCORES} scores timed")
    if mismatches:
        shown = "\n  ".join(mismatches[:5])
        raise BenchFailed(f"{len(mismatches)} features differ between serving and training, e.g.:\n  {shown}")
    return {
        "scored": len(score_s),
        "score_p50_ms": round(percentile_ms(score_s, 0.50), 3),
        "score_p99_ms": round(percentile_ms(score_s, 0.99), 3),
        "features_and_score_p50_ms": round(percentile_ms(path_s, 0.50), 3),
        "features_and_score_p99_ms": round(percentile_ms(path_s, 0.99), 3),
    }


def _mismatch(sample: Sample, served: Array, scorer: Scorer) -> list[str]:
    same = np.isclose(served, sample.expected, rtol=FEATURE_TOLERANCE, atol=FEATURE_TOLERANCE, equal_nan=True)
    return [
        f"{sample.customer} at {sample.at:%Y-%m-%d %H:%M:%S}: {scorer.features[column]} served "
        f"{served[column]!r}, trained {sample.expected[column]!r}"
        for column in np.flatnonzero(~same).tolist()
    ]


async def _learn(database: TestDatabase, merchant_id: str, protocol: Protocol, seed: int, scores: int) -> dict[str, Any]:
    """Train, evaluate, promote, and time the model part of decisions, on the imported history."""
    settings = Settings.from_env()
    owner = bootstrap.owner_database(database.owner_url)
    app = bootstrap.role_database(settings, database.owner_url, ServiceRoles(settings.db_role_prefix).app)
    window = Window(livemode=False, merchant_id=merchant_id)
    try:
        started = time.perf_counter()
        trained = await train_model(
            owner,
            PLATFORM,
            ACTOR,
            settings.risk_models_dir,
            window,
            since=protocol.at(protocol.train_since),
            until=protocol.at(protocol.train_until),
            delay_days=protocol.delay_days,
        )
        train_s = time.perf_counter() - started
        version = trained["version"]
        evaluated = await evaluate_model(
            owner,
            settings.risk_models_dir,
            window,
            version,
            start=None,
            test_days=protocol.test_days,
            delay_days=protocol.delay_days,
        )
        scorer = await _champion(owner, settings.risk_models_dir, version)
        samples = await _samples(owner, window, protocol, seed, WARMUP_SCORES + scores)
        latency = await _score_latency(scorer, app, Tenant(merchant_id, livemode=False), samples)
    finally:
        await app.dispose()
        await owner.dispose()
    return {
        "train_s": round(train_s, 1),
        "params": trained["params"],
        "validation_average_precision": round(trained["metrics"]["validation"]["average_precision"], 4),
        "training_rows": trained["metrics"]["training_rows"],
        "auc_roc": round(evaluated["auc_roc"], 4),
        "average_precision": round(evaluated["average_precision"], 4),
        "card_precision_top_100": round(evaluated["card_precision_top_100"], 4),
        "test_transactions": evaluated["transactions"],
        "test_frauds": evaluated["frauds"],
    } | latency


def _one_seed(database: TestDatabase, protocol: Protocol, seed: int, scores: int) -> dict[str, Any]:
    """Everything measured on one seed's data set, in its own scratch database."""
    os.environ.update({name: value for name, value in database.env().items() if name.startswith("BASTION_")})
    print(f"seed {seed}: simulating {protocol.customers} customers, {protocol.terminals} terminals, {protocol.days} days ...")
    started = time.perf_counter()
    simulated = simulate(
        customers=protocol.customers, terminals=protocol.terminals, days=protocol.days, start=protocol.start, seed=seed
    )
    with tempfile.TemporaryDirectory(prefix="bastion-bench-risk-ml-") as scratch:
        path = Path(scratch) / f"seed-{seed}.csv"
        with path.open("w", encoding="utf-8", newline="") as stream:
            stream.writelines(simulated.csv_lines())
        simulate_s = time.perf_counter() - started
        print(f"seed {seed}: importing {len(simulated)} transactions ...", flush=True)
        imported = uvloop.run(_import(database.owner_url, path))
    print(f"seed {seed}: {imported['import_rows_per_s']:,} rows/s; training, evaluating, scoring ...", flush=True)
    learned = uvloop.run(_learn(database, imported.pop("merchant_id"), protocol, seed, scores))
    print(
        f"seed {seed}: train {learned['train_s']:.0f} s, AUC {learned['auc_roc']:.3f}, AP {learned['average_precision']:.3f}, "
        f"CP@100 {learned['card_precision_top_100']:.3f}, score p99 {learned['score_p99_ms']:.2f} ms",
        flush=True,
    )
    return {"seed": seed, "simulate_s": round(simulate_s, 1)} | imported | learned


def bench(args: argparse.Namespace) -> dict[str, Any]:
    protocol = QUICK if args.quick else HANDBOOK
    seeds = args.seeds[:1] if args.quick else args.seeds
    scores = QUICK_SCORES if args.quick else args.scores
    per_seed: list[dict[str, Any]] = []
    pgbench_tps: float | None = None
    with server_url(args.database_url) as (admin_url, bin_dir):
        for seed in seeds:
            with migrated_database(admin_url, bin_dir, name_prefix="bastion_bench") as database:
                per_seed.append(_one_seed(database, protocol, seed, scores))
                if len(per_seed) > 1:
                    continue
                pgbench_version = "not run (quick)"
                if not args.quick:
                    print(f"pgbench -N on seed {seed}'s database, {PGBENCH_CLIENTS} clients ...", flush=True)
                    pgbench_tps, pgbench_version = run_pgbench(pgbench_binary(bin_dir), database.owner_url, PGBENCH_CLIENTS)
                box = machine(database.owner_url, pgbench_version)
    return summary(per_seed) | {
        "pgbench_n_tps": None if pgbench_tps is None else round(pgbench_tps, 1),
        "seeds": per_seed,
        "protocol": protocol.describe(),
        "scores_per_seed": scores,
        "revision": revision(),
        "machine": box,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """The quality metrics' mean and minimum over the seeds; each speed at its worst seed."""
    quality = ("auc_roc", "average_precision", "card_precision_top_100")
    return {
        **{name: round(float(np.mean([seed[name] for seed in per_seed])), 4) for name in quality},
        "min": {name: min(seed[name] for seed in per_seed) for name in quality},
        "import_rows_per_s": min(seed["import_rows_per_s"] for seed in per_seed),
        "train_s": max(seed["train_s"] for seed in per_seed),
        **{
            name: max(seed[name] for seed in per_seed)
            for name in ("score_p50_ms", "score_p99_ms", "features_and_score_p50_ms", "features_and_score_p99_ms")
        },
    }


def _quality_verdict(results: dict[str, Any], name: str, target: float) -> str:
    if len(results["seeds"]) < 2:
        return "one seed: does not count"
    return verdict(results["min"][name] >= target)


def table(results: dict[str, Any]) -> str:
    anchor = results["pgbench_n_tps"]
    rows = [
        ("seeds", ", ".join(str(seed["seed"]) for seed in results["seeds"]), "several", ""),
        ("AUC ROC, mean (min)", f"{results['auc_roc']:.3f} ({results['min']['auc_roc']:.3f})", "", ""),
        (
            "average precision, mean (min)",
            f"{results['average_precision']:.3f} ({results['min']['average_precision']:.3f})",
            f">= {TARGET_AVERAGE_PRECISION_MIN:.2f} on every seed",
            _quality_verdict(results, "average_precision", TARGET_AVERAGE_PRECISION_MIN),
        ),
        (
            "card precision top-100, mean (min)",
            f"{results['card_precision_top_100']:.3f} ({results['min']['card_precision_top_100']:.3f})",
            f">= {TARGET_CARD_PRECISION_MIN:.2f} on every seed",
            _quality_verdict(results, "card_precision_top_100", TARGET_CARD_PRECISION_MIN),
        ),
        (
            "import rows/s (slowest seed)",
            f"{results['import_rows_per_s']:,}",
            f">= {TARGET_IMPORT_ROWS_PER_S_MIN:,}",
            verdict(results["import_rows_per_s"] >= TARGET_IMPORT_ROWS_PER_S_MIN),
        ),
        ("training (slowest seed)", f"{results['train_s']:.0f} s", "", ""),
        (
            "score p50 / p99 (slowest seed)",
            f"{results['score_p50_ms']:.2f} / {results['score_p99_ms']:.2f} ms",
            f"p99 < {TARGET_SCORE_P99_MS_MAX:.0f} ms",
            verdict(results["score_p99_ms"] < TARGET_SCORE_P99_MS_MAX),
        ),
        (
            "features as of the time + score, p50 / p99 (slowest seed)",
            f"{results['features_and_score_p50_ms']:.2f} / {results['features_and_score_p99_ms']:.2f} ms",
            "",  # the target is the score's; this adds the decision's one feature query
            "",
        ),
        ("pgbench -N tps, same database", "not run" if anchor is None else f"{anchor:.0f}", "", ""),
    ]
    return metric_table(rows) + "\n\n" + seeds_table(results["seeds"])


SEED_COLUMNS = (
    "seed",
    "transactions (frauds)",
    "import rows/s",
    "train s",
    "params (leaves, leaf rows, rounds)",
    "AUC ROC",
    "average precision",
    "CP@100",
    "test transactions (frauds)",
    "scores timed",
    "score p50 / p99",
    "features + score p50 / p99",
)


def seeds_table(per_seed: list[dict[str, Any]]) -> str:
    """One row per seed, as SEED_COLUMNS name them."""
    lines = ["| " + " | ".join(SEED_COLUMNS) + " |", "|" + "---|" * len(SEED_COLUMNS)]
    for seed in per_seed:
        params = seed["params"]
        cells = (
            str(seed["seed"]),
            f"{seed['rows']:,} ({seed['frauds']:,})",
            f"{seed['import_rows_per_s']:,}",
            f"{seed['train_s']:.0f}",
            f"{params['num_leaves']}, {params['min_data_in_leaf']}, {params['num_boost_round']}",
            f"{seed['auc_roc']:.3f}",
            f"{seed['average_precision']:.3f}",
            f"{seed['card_precision_top_100']:.3f}",
            f"{seed['test_transactions']:,} ({seed['test_frauds']:,})",
            f"{seed['scored']:,}",
            f"{seed['score_p50_ms']:.2f} / {seed['score_p99_ms']:.2f} ms",
            f"{seed['features_and_score_p50_ms']:.2f} / {seed['features_and_score_p99_ms']:.2f} ms",
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def doc_section(results: dict[str, Any]) -> str:
    protocol = results["protocol"]
    return f"""{DOC_START}
{section_head("Risk: fraud models on the Handbook's simulated data", results, table(results))}

The Handbook's published figures on the same simulated data and protocol, for comparison: its
baselines (logistic regression, random forest, XGBoost, chapter 3.4) reach an AUC ROC of about
0.87, an average precision of 0.61 to 0.66 and a card precision top-100 of 0.27 to 0.29; with
hyperparameters chosen by validation (chapter 5), about 0.69 and 0.30. The issue's targets: an
average precision of at least {TARGET_AVERAGE_PRECISION_MIN:.2f} and a card precision top-100 of at least
{TARGET_CARD_PRECISION_MIN:.2f}, on several seeds (one seed does not count); a score's p99 under
{TARGET_SCORE_P99_MS_MAX:.0f} ms; an import of at least {TARGET_IMPORT_ROWS_PER_S_MIN:,} rows a second.

Method (`bench/risk_ml.py`): for each seed, a fresh database is migrated and given a merchant.
The Handbook's simulator (`bastion risk simulate`: {protocol["customers"]:,} customers,
{protocol["terminals"]:,} terminals, {protocol["days"]} days from {protocol["start"]}) writes that seed's data set
to a CSV file, which `import_history` (`bastion risk import-transactions`) loads into the
merchant's test-mode history: the rate is its rows over the call's wall time (COPY into a staging
table, the checks, the insert, the commit). A model is trained (`bastion risk train`) on
{protocol["train_since"]} to {protocol["train_until"]} with a {protocol["delay_days"]}-day delay: the history read and its
features computed, hyperparameters chosen among eight by prequential validation on the four weeks before
the window, the final LightGBM model, its calibration, the registry's row; timed whole. It is
evaluated (`bastion risk evaluate`) on {protocol["test_since"]} to {protocol["test_until"]}, never seen in
training or validation. Nothing is tuned on the test days. The model is then promoted and
loaded from its file as a deciding process loads its champion, and for
{results["scores_per_seed"]:,} imported transactions of the test days drawn at random ({WARMUP_SCORES} more not
counted; at most {SCORE_TIME_LIMIT_S:.0f} s a seed, the table says how many were timed), each in its own
transaction of the merchant's as the app role: its features read as of
its time (`features_as_of`: the customer's and the terminal's rows, one statement) and its score
with the features' contributions (`Scorer.score`), one at a time. Every served feature must equal
what training computed for the same transaction, or the run fails. Quality figures in the first
table are the mean and the minimum over the seeds; speeds are the slowest seed's. `pgbench -N` on
the first seed's database, with its history, is the anchor.

Reproduce: `.venv/bin/python bench/risk_ml.py` (seeds 0 to 4, several minutes a seed on two
cores); add `--database-url postgresql://user:pass@host/postgres` to run against an existing
server.
{DOC_END}"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Fraud models on the Handbook's simulated data, over several seeds.")
    parser.add_argument(
        "--seeds", "--seed", type=seeds_list, default=seeds_list(SEEDS_DEFAULT), help="simulator seeds, e.g. 0,1,2,3,4"
    )
    parser.add_argument("--scores", type=bounded_int(1, SCORES_MAX), default=SCORES_DEFAULT, help="measured scores per seed")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run on a small set: the first seed, {QUICK_SCORES} scores, no pgbench; nothing written",
    )
    parser.add_argument("--database-url", default=None, help="an admin URL of an existing server (default: embedded)")
    args = parser.parse_args()
    run_and_report("risk_ml", lambda: bench(args), table, doc_section, quick=args.quick)


if __name__ == "__main__":
    main()
