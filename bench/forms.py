"""Benchmark: the same requests as JSON and form-encoded (as Stripe's SDKs send them), against
pgbench -N on the same database.

One real `bastion api` process serves `POST /v1/customers` to concurrent keep-alive clients, in
alternating phases of JSON and form bodies with the same parameters (an email, a name, two
metadata keys), so that both see the same database and machine state; each phase's requests
and the API process's CPU time are measured. Beside it, in this process, the decoding alone:
`form_as_json` of a PaymentIntent body as the Python SDK encodes it. Every response must be a
200 customer and the database must hold exactly the customers sent, or the run fails.

    python bench/forms.py [--count 4000] [--clients 16] [--database-url URL]

Writes bench/results/forms.json and rewrites its own section of docs/benchmarks.md.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import psutil  # type: ignore[import-untyped]  # no stubs in the locked dependencies
import uvloop

from bastion.platform.http.forms import form_as_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.api and the test helpers
from bench.api import (
    ApiKey,
    BenchFailed,
    CustomerRequest,
    Phase,
    add_server_arguments,
    api_process,
    api_tree,
    bounded_int,
    client,
    cpu_s,
    customer_request,
    doc_markers,
    fetch_value,
    log_tail,
    machine,
    metric_table,
    percentile_ms,
    pgbench_binary,
    prepare,
    run_and_report,
    run_pgbench,
    section_head,
)
from bench.ledger import revision
from tests.support.postgres import migrated_database, server_url

COUNT_DEFAULT = 4_000
COUNT_MAX = 100_000
CLIENTS_DEFAULT = 16
CLIENTS_MAX = 256
# Each encoding's measured requests come in this many phases, alternating with the other's.
ROUNDS = 2
WARMUP_COUNT = 200
PHASE_TIME_LIMIT_S = 60.0
DECODES = 20_000
DECODE_TIME_LIMIT_S = 30.0
ENCODINGS = ("json", "form")
# A PaymentIntent create as the Python SDK encodes it (`confirm=true`, indexed `expand`).
SDK_INTENT_BODY = urlencode(
    [
        ("amount", "2000"),
        ("currency", "eur"),
        ("customer", "cus_01M00000000000000000000000"),
        ("payment_method", "pm_01M00000000000000000000000"),
        ("confirm", "true"),
        ("capture_method", "manual"),
        ("description", "Order 6735"),
        ("metadata[order]", "6735"),
        ("metadata[channel]", "web"),
        ("expand[0]", "customer"),
        ("expand[1]", "latest_charge"),
    ]
).encode()
# The request schema of POST /v1/payment_intents, as the API's document states it.
_DOCUMENT_SCHEMA = "PaymentIntentCreate"


def encoded_request(encoding: str) -> CustomerRequest:
    """Customers with the same parameters (an email, a name, two metadata keys) in `encoding`."""

    def request(port: int, secret: str, run_id: str, index: int) -> bytes:
        fields = {"email": f"customer{index}@example.com", "name": f"Customer {index}"}
        metadata = {"bench": run_id, "encoding": encoding}
        key = f"bench-{run_id}-{encoding}-{index}"
        if encoding == "json":
            return customer_request(port, secret, key, orjson.dumps({**fields, "metadata": metadata}))
        pairs = [*fields.items(), *((f"metadata[{name}]", value) for name, value in metadata.items())]
        return customer_request(port, secret, key, urlencode(pairs).encode(), "application/x-www-form-urlencoded")

    return request


@dataclass(frozen=True)
class Target:
    """The API under load: its port, its processes, the key and the run's id."""

    port: int
    processes: list[psutil.Process]
    key: ApiKey
    run_id: str


async def run_phase(target: Target, encoding: str, clients: int, phase: Phase) -> float:
    """The phase run; the API processes' CPU seconds it took."""
    before = cpu_s(target.processes)
    started = time.perf_counter()
    request = encoded_request(encoding)
    await asyncio.gather(*(client(target.port, target.key, target.run_id, phase, request) for _ in range(clients)))
    phase.wall_s = time.perf_counter() - started
    return cpu_s(target.processes) - before


async def load(target: Target, clients: int, count: int) -> dict[str, list[tuple[Phase, float]]]:
    next_index = 0
    for encoding in ENCODINGS:
        warmup = Phase(first_index=next_index, count=WARMUP_COUNT, deadline=time.monotonic() + PHASE_TIME_LIMIT_S)
        await run_phase(target, encoding, clients, warmup)
        next_index += WARMUP_COUNT
        if warmup.errors:
            raise BenchFailed(f"warm-up failed: {warmup.error_samples}")
    measured: dict[str, list[tuple[Phase, float]]] = {encoding: [] for encoding in ENCODINGS}
    per_phase = max(1, count // ROUNDS)
    for _ in range(ROUNDS):
        for encoding in ENCODINGS:
            phase = Phase(first_index=next_index, count=per_phase, deadline=time.monotonic() + PHASE_TIME_LIMIT_S)
            api_cpu_s = await run_phase(target, encoding, clients, phase)
            measured[encoding].append((phase, api_cpu_s))
            next_index += per_phase
    return measured


def decode_timing(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, float]:
    """`form_as_json` of the SDK's PaymentIntent body, µs a call: median of 5 batches."""
    batch = DECODES // 5
    per_call_us = []
    deadline = time.monotonic() + DECODE_TIME_LIMIT_S
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(batch):
            form_as_json(SDK_INTENT_BODY, schema, components)
        per_call_us.append((time.perf_counter() - started) * 1e6 / batch)
        if time.monotonic() > deadline:
            break
    decoded = orjson.loads(form_as_json(SDK_INTENT_BODY, schema, components))
    if decoded["amount"] != 2000 or decoded["confirm"] is not True or decoded["expand"] != ["customer", "latest_charge"]:
        raise BenchFailed(f"the SDK body decoded wrongly: {decoded}")
    return {"decode_us": round(statistics.median(per_call_us), 1), "decode_bytes": len(SDK_INTENT_BODY)}


def api_document(port: int) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10).json()
    return document


def summary(phases: list[tuple[Phase, float]]) -> dict[str, float]:
    latencies = [latency for phase, _ in phases for latency in phase.latencies_s]
    wall_s = sum(phase.wall_s for phase, _ in phases)
    api_cpu_s = sum(cpu for _, cpu in phases)
    return {
        "per_s": round(len(latencies) / wall_s, 1),
        "p50_ms": round(percentile_ms(latencies, 0.50), 2),
        "p99_ms": round(percentile_ms(latencies, 0.99), 2),
        "api_cpu_ms_per_request": round(api_cpu_s * 1000 / len(latencies), 3),
        "count": len(latencies),
    }


def bench(args: argparse.Namespace) -> dict[str, Any]:
    with ExitStack() as stack:
        admin_url, bin_dir = stack.enter_context(server_url(args.database_url))
        database = stack.enter_context(migrated_database(admin_url, bin_dir, name_prefix="bastion_bench"))
        key = asyncio.run(prepare(database))
        log = stack.enter_context(tempfile.TemporaryFile())
        with api_process(database, log, args.api_workers) as (port, process):
            document = api_document(port)
            print(f"load: {args.count} requests each as JSON and as a form, {args.clients} clients ...", flush=True)
            target = Target(port=port, processes=api_tree(process), key=key, run_id=str(time.time_ns()))
            measured = uvloop.run(load(target, args.clients, args.count))
        phases = [phase for runs in measured.values() for phase, _ in runs]
        errors = sum(phase.errors for phase in phases)
        if errors:
            samples = "\n  ".join(sample for phase in phases for sample in phase.error_samples)
            raise BenchFailed(f"{errors} failed requests, e.g.:\n  {samples}\nAPI log tail:\n{log_tail(log)}")
        sent = len(ENCODINGS) * WARMUP_COUNT + sum(len(phase.latencies_s) for phase in phases)
        stored = asyncio.run(
            fetch_value(database.owner_url, "SELECT count(*) FROM customers WHERE merchant_id = $1", key.merchant_id)
        )
        if stored != sent:
            raise BenchFailed(f"{sent} customers created over HTTP but {stored} in the database")
        components = document["components"]["schemas"]
        decoding = decode_timing({"$ref": f"#/components/schemas/{_DOCUMENT_SCHEMA}"}, components)
        print(f"pgbench -N: {args.clients} clients ...", flush=True)
        pgbench_tps, pgbench_version = run_pgbench(pgbench_binary(bin_dir), database.owner_url, args.clients)
        return {
            "json": summary(measured["json"]),
            "form": summary(measured["form"]),
            **decoding,
            "pgbench_n_tps": round(pgbench_tps, 1),
            "clients": args.clients,
            "errors": errors,
            "machine": machine(database.owner_url, pgbench_version),
            "revision": revision(),
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def table(results: dict[str, Any]) -> str:
    json_, form = results["json"], results["form"]
    rows = [(f"{name}: customers/s", f"{side['per_s']:.0f}", "", "") for name, side in (("JSON", json_), ("form", form))]
    rows += [
        (f"{name}: p50 / p99", f"{side['p50_ms']:.1f} / {side['p99_ms']:.1f} ms", "", "")
        for name, side in (("JSON", json_), ("form", form))
    ]
    rows += [
        (f"{name}: API CPU per request", f"{side['api_cpu_ms_per_request']:.3f} ms", "", "")
        for name, side in (("JSON", json_), ("form", form))
    ]
    rows += [
        ("form / JSON throughput", f"{form['per_s'] / json_['per_s']:.2f}", "", ""),
        (f"decoding an SDK PaymentIntent body ({results['decode_bytes']} bytes)", f"{results['decode_us']:.1f} µs", "", ""),
        ("pgbench -N tps, same database", f"{results['pgbench_n_tps']:.0f}", "", ""),
        ("errors", str(results["errors"]), "0", "met" if results["errors"] == 0 else "MISSED"),
    ]
    return metric_table(rows)


def doc_section(results: dict[str, Any]) -> str:
    start, end = doc_markers("forms")
    return f"""{start}
{section_head("Form-encoded bodies (Stripe's SDKs) against JSON", results, table(results))}

Method (`bench/forms.py`): one real `bastion api` process on a fresh database serves `POST /v1/customers` with a
unique `Idempotency-Key` to {results["clients"]} keep-alive clients, in alternating phases ({ROUNDS} each) of JSON bodies
and of form bodies with the same parameters (`email`, `name`, `metadata[bench]`, `metadata[encoding]`), after
{WARMUP_COUNT} warm-up requests of each; every answer must be a 200 customer and the database must hold exactly the
customers sent. API CPU is the process's user and system time over each phase. The decoding alone is
`platform.http.forms.form_as_json` of a PaymentIntent body as the Python SDK encodes it (11 parameters, metadata,
`expand[0]`), typed by the served document's schema, median of 5 batches. The anchor is `pgbench -N` on the same
database right after.

Reproduce: `.venv/bin/python bench/forms.py --count {COUNT_DEFAULT} --clients {CLIENTS_DEFAULT}`.
{end}"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="JSON and form-encoded request bodies, against pgbench -N on the same database.")
    parser.add_argument("--count", type=bounded_int(1, COUNT_MAX), default=COUNT_DEFAULT, help="measured requests per encoding")
    parser.add_argument("--clients", type=bounded_int(1, CLIENTS_MAX), default=CLIENTS_DEFAULT, help="concurrent clients")
    add_server_arguments(parser)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    run_and_report("forms", lambda: bench(args), table, doc_section)


if __name__ == "__main__":
    main()
