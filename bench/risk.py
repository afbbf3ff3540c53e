"""Benchmark: the risk engine. Decisions with a live ruleset of 50 rules over 10 velocity
counters, from concurrent clients, on one scratch database; and, in the same run, confirms through
the API with the risk engine off and on (pgbench on the same database as the anchor). Both with
the velocity counters in PostgreSQL (the default) and in Redis (ADR 22).

One run, one scratch database (migrated like the tests'), a `redis-server` of its own, real
`bastion vault` and `bastion acquirer` processes, and three `bastion api` processes on it: one
with `BASTION_RISK_ENGINE=off`, one with its velocity in Redis.

- decisions: the risk engine's `Assessor` in this process, as the app role, `--count` attempts of
  varied cards, customers and addresses from `--clients` concurrent tasks; each call's latency;
  then as many again with the velocity in Redis;
- confirms: `POST /v1/payment_intents` with `confirm: true` (a fresh payment method each) against
  the API without the risk engine, then against the API with it, then against the one with its
  velocity in Redis, the same count and clients.

Every confirm must answer a succeeded intent (the ruleset matches none of them), each decision
must be made within its budget (none `not_assessed`), or the run fails. Every loop is bounded in
count and time.

    python bench/risk.py [--quick] [--count 2000] [--confirms 600] [--clients 16] [--database-url URL]

Writes bench/results/risk.json and rewrites its own section of docs/benchmarks.md (`--quick` is a
smoke run that writes only a temporary JSON).
"""

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvloop

from bastion import bootstrap
from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, ServiceRoles, Tenant
from bastion.platform.settings import Settings
from bastion.risk import Assessor, Attempt, Locator, PostgresVelocity, RedisVelocity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.api and the test helpers
from bench.api import (
    RATE_LIMIT_UNTHROTTLED,
    BenchFailed,
    Phase,
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
from bench.payments import Merchant, bench_merchant, confirm_request, payment_methods, payment_succeeded, run_phase
from tests.support.postgres import migrated_database, running_acquirer, running_api_process, running_vault, server_url
from tests.support.redis import running_redis

COUNT_DEFAULT = 2_000
CONFIRMS_DEFAULT = 600
COUNT_MAX = 50_000
QUICK_COUNT = 100
CLIENTS_DEFAULT = 16
CLIENTS_MAX = 64
WARMUP_COUNT = 30
TIME_LIMIT_S = 180.0
BUDGET_MS = 1_000  # generous: a decision past it would be not_assessed, which fails the run
TARGET_P99_MS_MAX = 5.0
TARGET_RATIO_MIN = 0.8

# Ten velocity counters, and fifty rules over them and other attributes, none of which the
# benchmark's attempts meet: every rule is evaluated on every attempt.
VELOCITY = (
    "attempts_per_card_hourly",
    "attempts_per_card_daily",
    "charges_per_card_daily",
    "declines_per_card_daily",
    "attempts_per_ip_hourly",
    "card_count_for_ip_daily",
    "attempts_per_customer_daily",
    "amount_in_usd_per_card_daily",
    "attempts_per_email_weekly",
    "card_count_for_customer_weekly",
)
ACTIONS = ("block", "review", "request_3ds")
# Networks the shipped GeoIP database places (New York, London): every decision looks its
# address up and computes its travel; a thousand addresses, as many shoppers' would be.
PLACED_NETWORKS = ("72.229.28", "74.101.0", "185.86.151", "81.2.69")
DOC_START, DOC_END = doc_markers("risk")


def rules() -> list[str]:
    made = []
    for index in range(50):
        counter = VELOCITY[index % len(VELOCITY)]
        action = ACTIONS[index % len(ACTIONS)]
        extra = (
            f" and :amount: > {1_000_000 + index}",
            f" or :customer_email: = 'nobody{index}@example.invalid'",
            " and not :card_brand: in ('visa', 'mastercard', 'amex')",
            f" and :bot_likelihood: >= {90 + index % 10}",
            "",
        )[index % 5]
        made.append(f"{action} if :{counter}: > {100_000 + index}{extra}")
    return made


async def _live_ruleset(api_url: str, merchant: Merchant) -> None:
    async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {merchant.secret}"}, timeout=30) as api:
        made = await api.post("/v1/risk/rulesets", json={"rules": [{"rule": rule} for rule in rules()]})
        if made.status_code != httpx.codes.OK:
            raise BenchFailed(f"ruleset: HTTP {made.status_code}: {made.text[:300]}")
        live = await api.post(f"/v1/risk/rulesets/{made.json()['id']}/activate", json={})
        if live.status_code != httpx.codes.OK:
            raise BenchFailed(f"activate: HTTP {live.status_code}: {live.text[:300]}")


def _attempt(rng: random.Random) -> Attempt:
    return Attempt(
        attempt_id=new_id("ch"),
        payment_intent_id=new_id("pi"),
        amount=rng.choice([900, 2_000, 4_500]),
        currency="USD",
        card_brand="visa",
        card_funding="credit",
        card_fingerprint=f"{rng.randrange(5_000):032x}",
        card_last4="4242",
        livemode=False,
        customer_id=f"cus_{rng.randrange(2_000)}",
        customer_email=f"shopper{rng.randrange(2_000)}@example.com",
        ip_address=f"{rng.choice(PLACED_NETWORKS)}.{rng.randrange(1, 251)}",
        signals={
            "device": {"user_agent_sha256": f"{rng.randrange(5_000):064x}", "timezone": "Europe/Paris"},
            "behaviour": {"keystroke_count": 16, "inter_key_interval_ms": {"mean": 130.0, "stdev": 45.0}},
        },
    )


async def _decisions(
    settings: Settings, owner_url: str, merchant: Merchant, *, count: int, clients: int, redis_url: str | None = None
) -> Phase:
    """`redis_url`: the velocity counters in that Redis, else in PostgreSQL."""
    database = bootstrap.role_database(settings, owner_url, ServiceRoles(settings.db_role_prefix).app)
    velocity = PostgresVelocity() if redis_url is None else RedisVelocity(redis_url)
    assessor = Assessor(database, budget_ms=BUDGET_MS, locator=Locator(), velocity=velocity)
    tenant, actor = Tenant(merchant.merchant_id, livemode=False), Actor(id="bench")
    rng = random.Random(20261205)
    attempts = [_attempt(rng) for _ in range(WARMUP_COUNT + count)]
    phase = Phase(first_index=0, count=WARMUP_COUNT + count, deadline=time.monotonic() + TIME_LIMIT_S)

    async def client() -> None:
        while (index := phase.take()) is not None:
            started = time.perf_counter()
            decided = await assessor.assess(tenant, actor, attempts[index])
            if index >= WARMUP_COUNT:
                phase.latencies_s.append(time.perf_counter() - started)
            if decided.risk_level == "not_assessed":
                phase.fail(f"decision {index} ran out of its {BUDGET_MS} ms budget")
            elif decided.action.value != "allow":
                phase.fail(f"decision {index}: {decided.action.value} by {decided.rule}")

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client() for _ in range(clients)))
    finally:
        await velocity.close()
        await database.dispose()
    phase.wall_s = time.perf_counter() - started
    return phase


async def _confirms(api_url: str, merchant: Merchant, methods: list[str], *, clients: int, count: int) -> Phase:
    port = int(api_url.rsplit(":", 1)[1])
    run_id = new_id("req")[-8:]

    def confirm(index: int) -> bytes:
        return confirm_request(port, merchant.secret, run_id, index, methods[index])

    warmup = Phase(first_index=0, count=WARMUP_COUNT, deadline=time.monotonic() + TIME_LIMIT_S)
    await run_phase(port, clients, warmup, confirm, payment_succeeded)
    measured = Phase(first_index=WARMUP_COUNT, count=count, deadline=time.monotonic() + TIME_LIMIT_S)
    await run_phase(port, clients, measured, confirm, payment_succeeded)
    measured.error_samples[:0] = warmup.error_samples
    return measured


def bench(args: argparse.Namespace) -> dict[str, Any]:
    count = QUICK_COUNT if args.quick else args.count
    confirms = QUICK_COUNT if args.quick else args.confirms
    with ExitStack() as stack:
        admin_url, bin_dir = stack.enter_context(server_url(args.database_url))
        database = stack.enter_context(migrated_database(admin_url, bin_dir, name_prefix="bastion_bench"))
        quiet = {
            "BASTION_RATE_LIMIT_PER_S": RATE_LIMIT_UNTHROTTLED,
            "BASTION_RATE_LIMIT_BURST": RATE_LIMIT_UNTHROTTLED,
            "BASTION_LOG_LEVEL": "warning",
            "BASTION_RISK_BUDGET_MS": str(BUDGET_MS),
        }
        vault = stack.enter_context(running_vault(database, quiet))
        stack.enter_context(running_acquirer(database, quiet))
        redis_url = stack.enter_context(running_redis(Path(stack.enter_context(tempfile.TemporaryDirectory()))))
        with_risk = stack.enter_context(running_api_process(database, quiet, port=database.api_port))
        without_risk = stack.enter_context(running_api_process(database, quiet | {"BASTION_RISK_ENGINE": "off"}))
        with_redis = stack.enter_context(running_api_process(database, quiet | {"BASTION_RISK_VELOCITY_REDIS_URL": redis_url}))
        os.environ.update({name: value for name, value in database.env().items() if name.startswith("BASTION_")})
        settings = Settings.from_env()
        merchant = asyncio.run(bench_merchant(database))
        uvloop.run(_live_ruleset(with_risk.url, merchant))
        print(f"decisions: {count} with {len(rules())} rules over {len(VELOCITY)} counters, {args.clients} clients ...")
        decided = uvloop.run(_decisions(settings, database.owner_url, merchant, count=count, clients=args.clients))
        print("decisions again, the velocity in Redis ...")
        in_redis = uvloop.run(
            _decisions(settings, database.owner_url, merchant, count=count, clients=args.clients, redis_url=redis_url)
        )
        each = WARMUP_COUNT + confirms
        print(f"preparing {3 * each} payment methods ...", flush=True)
        methods = uvloop.run(payment_methods(vault.url, with_risk.url, merchant, 3 * each))
        print(
            f"confirms: {confirms} without the risk engine, with it, and with its velocity in Redis, {args.clients} clients ..."
        )
        plain = uvloop.run(_confirms(without_risk.url, merchant, methods[:each], clients=args.clients, count=confirms))
        assessed = uvloop.run(_confirms(with_risk.url, merchant, methods[each : 2 * each], clients=args.clients, count=confirms))
        redis_assessed = uvloop.run(
            _confirms(with_redis.url, merchant, methods[2 * each :], clients=args.clients, count=confirms)
        )
        phases = (decided, in_redis, plain, assessed, redis_assessed)
        errors = sum(phase.errors for phase in phases)
        if errors:
            samples = "\n  ".join(sample for phase in phases for sample in phase.error_samples)
            raise BenchFailed(f"{errors} failures, e.g.:\n  {samples}")
        pgbench_tps, pgbench_version = run_pgbench(pgbench_binary(bin_dir), database.owner_url, args.clients)
        without_per_s = len(plain.latencies_s) / plain.wall_s
        with_per_s = len(assessed.latencies_s) / assessed.wall_s
        with_redis_per_s = len(redis_assessed.latencies_s) / redis_assessed.wall_s
        return {
            "decisions_per_s": round(len(decided.latencies_s) / decided.wall_s, 1),
            "decision_p50_ms": round(percentile_ms(decided.latencies_s, 0.50), 2),
            "decision_p99_ms": round(percentile_ms(decided.latencies_s, 0.99), 2),
            "confirm_per_s_without": round(without_per_s, 1),
            "confirm_per_s_with": round(with_per_s, 1),
            "ratio_with_to_without": round(with_per_s / without_per_s, 3),
            "confirm_p99_ms_without": round(percentile_ms(plain.latencies_s, 0.99), 2),
            "confirm_p99_ms_with": round(percentile_ms(assessed.latencies_s, 0.99), 2),
            "decisions_per_s_redis": round(len(in_redis.latencies_s) / in_redis.wall_s, 1),
            "decision_p50_ms_redis": round(percentile_ms(in_redis.latencies_s, 0.50), 2),
            "decision_p99_ms_redis": round(percentile_ms(in_redis.latencies_s, 0.99), 2),
            "confirm_per_s_with_redis": round(with_redis_per_s, 1),
            "ratio_with_redis_to_without": round(with_redis_per_s / without_per_s, 3),
            "pgbench_n_tps": round(pgbench_tps, 1),
            "rules": len(rules()),
            "velocity_counters": len(VELOCITY),
            "decisions": len(decided.latencies_s),
            "confirms": confirms,
            "clients": args.clients,
            "errors": errors,
            "revision": revision(),
            "machine": machine(database.owner_url, pgbench_version),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def table(results: dict[str, Any]) -> str:
    rows = [
        ("decisions/s (50 rules, 10 counters)", f"{results['decisions_per_s']:.0f}", "", ""),
        ("decision p50", f"{results['decision_p50_ms']:.2f} ms", "", ""),
        (
            "decision p99",
            f"{results['decision_p99_ms']:.2f} ms",
            f"< {TARGET_P99_MS_MAX:.0f} ms",
            verdict(results["decision_p99_ms"] < TARGET_P99_MS_MAX),
        ),
        ("confirms/s without the risk engine", f"{results['confirm_per_s_without']:.0f}", "", ""),
        ("confirms/s with it", f"{results['confirm_per_s_with']:.0f}", "", ""),
        (
            "with / without",
            f"{results['ratio_with_to_without']:.2f}",
            f">= {TARGET_RATIO_MIN}",
            verdict(results["ratio_with_to_without"] >= TARGET_RATIO_MIN),
        ),
        (
            "confirm p99 without / with",
            f"{results['confirm_p99_ms_without']:.0f} / {results['confirm_p99_ms_with']:.0f} ms",
            "",
            "",
        ),
        ("velocity in Redis: decisions/s", f"{results['decisions_per_s_redis']:.0f}", "", ""),
        ("velocity in Redis: decision p50", f"{results['decision_p50_ms_redis']:.2f} ms", "", ""),
        (
            "velocity in Redis: decision p99",
            f"{results['decision_p99_ms_redis']:.2f} ms",
            f"< {TARGET_P99_MS_MAX:.0f} ms",
            verdict(results["decision_p99_ms_redis"] < TARGET_P99_MS_MAX),
        ),
        ("velocity in Redis: confirms/s", f"{results['confirm_per_s_with_redis']:.0f}", "", ""),
        (
            "velocity in Redis: with / without",
            f"{results['ratio_with_redis_to_without']:.2f}",
            f">= {TARGET_RATIO_MIN}",
            verdict(results["ratio_with_redis_to_without"] >= TARGET_RATIO_MIN),
        ),
        ("pgbench -N tps, same database", f"{results['pgbench_n_tps']:.0f}", "", ""),
        ("errors", str(results["errors"]), "0", verdict(results["errors"] == 0)),
    ]
    return metric_table(rows)


def doc_section(results: dict[str, Any]) -> str:
    return f"""{DOC_START}
{section_head("Risk: decisions, and confirms with and without the risk engine", results, table(results))}

Method (`bench/risk.py`): a fresh database is migrated; real `bastion vault` and `bastion acquirer`
processes run on it, and three `bastion api` processes, one with `BASTION_RISK_ENGINE=off` and one
with its velocity counters in a `redis-server` of the run's own (ADR 22). The
merchant's live ruleset has {results["rules"]} rules over {results["velocity_counters"]} velocity
counters and other attributes, none of which the attempts meet, so that each is evaluated every
time. Decisions: {results["decisions"]} assessments ({WARMUP_COUNT} more not counted) of attempts
of varied cards, customers, emails, addresses and devices, from {results["clients"]} concurrent tasks
calling the engine (`risk.Assessor`) in the benchmark's process as the app role: each one is its
own transaction (the context, the velocity of five subjects, travel, the list lookups, the
decision and its event); then as many again with the velocity in Redis. Confirms: {results["confirms"]}
`POST /v1/payment_intents` with `confirm: true` ({WARMUP_COUNT} more not counted), each with its own
payment method, from {results["clients"]} keep-alive clients, first against the API without the risk
engine, then against the one with it, then against the one with its velocity in Redis;
every one must succeed and no decision may run out of its budget, or the run fails. `pgbench -N`
on the same database follows. All processes and the load generator share the machine's cores.

Reproduce: `.venv/bin/python bench/risk.py` (after `make .venv/.installed-bench`); add
`--database-url postgresql://user:pass@host/postgres` to run against an existing server.
{DOC_END}"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Risk decisions, and confirms with and without the risk engine.")
    parser.add_argument("--count", type=bounded_int(1, COUNT_MAX), default=COUNT_DEFAULT, help="measured decisions")
    parser.add_argument(
        "--confirms", type=bounded_int(1, COUNT_MAX), default=CONFIRMS_DEFAULT, help="measured confirms of each kind"
    )
    parser.add_argument("--clients", type=bounded_int(1, CLIENTS_MAX), default=CLIENTS_DEFAULT, help="concurrent clients")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run of {QUICK_COUNT} of each; nothing written")
    parser.add_argument("--database-url", default=None, help="an admin URL of an existing server (default: embedded)")
    args = parser.parse_args()
    run_and_report("risk", lambda: bench(args), table, doc_section, quick=args.quick)


if __name__ == "__main__":
    main()
