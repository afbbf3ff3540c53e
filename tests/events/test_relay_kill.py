"""kill -9 of the worker in the middle of a relay batch: after a restart every event is
published and every event has exactly one effect (the inbox absorbs the redelivery)."""

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from bastion.platform.settings import Settings
from tests.support import postgres
from tests.support.platform import Platform
from tests.support.subscribers import create_effects_table, effect_counts, effect_recorder

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENT_COUNT = 300
# Enough to be inside the first batch (100 events at 20 ms each) when the kill lands.
EFFECTS_BEFORE_KILL_MIN = 10
START_TIMEOUT_S = 60.0
PUBLISH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.02


@pytest.fixture(scope="module")
def private_database(pg_server: tuple[str, Path | None]) -> Iterator[postgres.TestDatabase]:
    """A database of its own: the worker here must not publish the session database's events."""
    with postgres.migrated_database(*pg_server) as database:
        yield database


def _start_worker(database: postgres.TestDatabase, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {
        **database.env(),
        "BASTION_SUBSCRIBERS": "tests.support.subscribers:effect_recorder",
        # The subscriber lives in the tests package, importable from the repository root.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen([sys.executable, "-m", "bastion", "worker"], env=env, cwd=REPO_ROOT, stdout=log, stderr=log)


def _tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-3000:]


async def test_kill_during_a_batch_then_restart(private_database: postgres.TestDatabase) -> None:
    settings = dataclasses.replace(
        Settings.from_env(),
        data_dir=private_database.data_dir,
        database_url=private_database.owner_url,
        db_role_prefix=private_database.role_prefix,
    )
    platform = Platform(private_database, settings)
    log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in the finally below, after the workers)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        async with platform.owner.transaction() as connection:
            await create_effects_table(connection, private_database.roles.worker)
        merchant = await platform.merchant()
        async with platform.client(merchant) as client:
            for index in range(EVENT_COUNT):
                response = await client.post("/v1/customers", json={"name": f"customer {index}"})
                assert response.status_code == 200, response.text

        async def counts() -> tuple[int, int, int]:
            """Effects, events published, events with an effect but not published."""
            async with platform.owner.transaction() as connection:
                row = await connection.fetchrow(
                    "SELECT (SELECT count(*) FROM relay_effects),"
                    " (SELECT count(*) FROM events WHERE published_at IS NOT NULL),"
                    " (SELECT count(*) FROM events e WHERE published_at IS NULL"
                    "  AND EXISTS (SELECT 1 FROM relay_effects r WHERE r.event_id = e.id))"
                )
            return row[0], row[1], row[2]

        workers.append(_start_worker(private_database, log))
        deadline = time.monotonic() + START_TIMEOUT_S
        while (await counts())[0] < EFFECTS_BEFORE_KILL_MIN:
            assert workers[0].poll() is None, _tail(log)
            assert time.monotonic() < deadline, f"no effects within {START_TIMEOUT_S} s: {_tail(log)}"
            await asyncio.sleep(POLL_INTERVAL_S)
        os.kill(workers[0].pid, signal.SIGKILL)
        assert workers[0].wait(timeout=STOP_TIMEOUT_S) == -signal.SIGKILL

        effects, published, applied_unpublished = await counts()
        assert effects < EVENT_COUNT
        assert published < EVENT_COUNT
        assert applied_unpublished > 0, "the kill must land after some effects committed and before their batch was marked"

        workers.append(_start_worker(private_database, log))
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        while (await counts())[1] < EVENT_COUNT:
            assert workers[1].poll() is None, _tail(log)
            assert time.monotonic() < deadline, f"not all events published within {PUBLISH_TIMEOUT_S} s: {_tail(log)}"
            await asyncio.sleep(POLL_INTERVAL_S)
        workers[1].send_signal(signal.SIGTERM)
        assert workers[1].wait(timeout=STOP_TIMEOUT_S) == 0, _tail(log)

        async with platform.owner.transaction() as connection:
            event_ids = {row["id"] for row in await connection.fetch("SELECT id FROM events")}
            effects_by_event = await effect_counts(connection, effect_recorder.name)
        assert len(event_ids) == EVENT_COUNT
        assert set(effects_by_event) == event_ids
        doubled = {event_id: count for event_id, count in effects_by_event.items() if count != 1}
        assert doubled == {}, "an event had more than one effect"
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=STOP_TIMEOUT_S)
        log.close()
        await platform.close()
