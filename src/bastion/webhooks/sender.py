"""The worker's sender: claims due deliveries, POSTs them signed, and records what each
endpoint answered on the persistent schedule of `schedule.py` (docs/webhooks.md).

One loop per worker process: it claims as many due deliveries as it has room for (at most
`in_flight_max` at once, `per_endpoint_max` per endpoint, so that a slow or dead endpoint holds
only its own slots), sends each in its own task, and a task of its own records the answers as
they come, a batch in one statement. A claim pushes the delivery's `next_attempt_at` past the attempt's end, so a sender
that dies mid-attempt leaves the delivery due again then (at least once: receivers deduplicate on
`webhook-id`). It wakes on each commit of new deliveries (NOTIFY), and polls as a fallback.
"""

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

import aiohttp
import orjson

from bastion import events
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import BastionError
from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, AnyRow, Database, Tenant
from bastion.platform.http.outbound import DestinationPolicy, check_url, guarded_session
from bastion.platform.logging import get_logger
from bastion.webhooks import repository, service
from bastion.webhooks.schedule import (
    DELIVERY_TIMEOUT_S,
    JITTER_FRACTION,
    PAYLOAD_BYTES_MAX,
    RESPONSE_BODY_KEPT_BYTES,
    Verdict,
    endpoint_failing_too_long,
    judge,
    kept_response_body,
)
from bastion.webhooks.secrets import EndpointSecrets
from bastion.webhooks.signing import signature_headers

_log = get_logger(__name__)

CHANNEL: Final = "bastion_webhooks"
SENDER_ACTOR: Final = Actor(id="webhooks.sender")
USER_AGENT: Final = "Bastion-Webhooks/1"
# A claim outlives its attempt by this much before another sender may take the delivery.
LEASE_MARGIN: Final = timedelta(seconds=15)
# An attempt's error as kept: the reason, not a traceback.
ERROR_LENGTH_MAX: Final = 1_024
# Answers recorded in one statement at the most.
RECORD_BATCH_MAX: Final = 500
# On stop, attempts in flight get this long to finish and be recorded.
STOP_GRACE_S: Final = DELIVERY_TIMEOUT_S + 1.0


@dataclass(frozen=True, slots=True)
class SenderLimits:
    in_flight_max: int = 128
    per_endpoint_max: int = 8
    jitter_fraction: float = JITTER_FRACTION
    poll_interval_s: float = 1.0
    timeout_s: float = DELIVERY_TIMEOUT_S


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt came to: the endpoint's answer, or why there was none."""

    delivery: AnyRow
    attempted_at: datetime
    duration_ms: int
    status_code: int | None = None
    retry_after: str | None = None
    response_body: str | None = None
    error: str | None = None
    # The delivery cannot be sent at all (its body is too large): no retry would change that.
    hopeless: bool = False


@dataclass(slots=True)
class _Recorded:
    common: list[tuple[Answer, dict[str, object]]] = field(default_factory=list)
    final: list[tuple[Answer, dict[str, object], Verdict]] = field(default_factory=list)


# Makes the HTTP session of one mode: its destination policy, and how many connections it may hold.
Connect = Callable[[DestinationPolicy, int], aiohttp.ClientSession]


class WebhookSender:
    def __init__(
        self,
        database: Database,
        secrets: EndpointSecrets,
        *,
        limits: SenderLimits | None = None,
        proxy_url: str | None = None,
        connect: Connect | None = None,
    ) -> None:
        self._database = database
        self._secrets = secrets
        self._limits = limits if limits is not None else SenderLimits()
        self._proxy_url = proxy_url
        timeout_s = self._limits.timeout_s
        self._connect: Connect = connect or (
            lambda policy, connections: guarded_session(
                policy, timeout_s=timeout_s, connections_max=connections, proxy_url=proxy_url
            )
        )
        # By livemode: test mode also reaches a developer's own machine over http. The sessions
        # are made at first use, inside the running event loop, as aiohttp requires.
        self._policies = {livemode: DestinationPolicy(allow_loopback_http=not livemode) for livemode in (False, True)}
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        self._rng = random.SystemRandom()
        self._in_flight: Counter[str] = Counter()
        self._last_endpoint = ""

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    def _session(self, livemode: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(livemode)
        if session is None:
            session = self._sessions[livemode] = self._connect(self._policies[livemode], self._limits.in_flight_max)
        return session

    async def send_due(self) -> int:
        """Claim what is due now, send it all and record the answers; how many were sent. For
        tests and tools: the worker runs `run`, which keeps claiming while it sends."""
        claimed = await self._claim(self._limits.in_flight_max)
        answers = await asyncio.gather(*(self._attempt(row) for row in claimed))
        await self._record(answers)
        self._in_flight.clear()
        return len(answers)

    async def run(self, listen_dsn: str, stop: asyncio.Event) -> None:
        """Send until `stop` is set. Claiming and sending go on while a task of its own records
        the answers, in batches: no attempt waits for another's record."""
        wake = asyncio.Event()
        answered: asyncio.Queue[Answer] = asyncio.Queue()
        helpers = [
            asyncio.create_task(events.wake_on_notify(listen_dsn, CHANNEL, wake, name="webhooks")),
            asyncio.create_task(self._record_forever(answered)),
        ]
        stopping = asyncio.create_task(stop.wait())
        sending: dict[asyncio.Task[Answer], str] = {}
        _log.info(
            "webhook_sender_started", in_flight_max=self._limits.in_flight_max, per_endpoint_max=self._limits.per_endpoint_max
        )
        try:
            while not stop.is_set():
                wake.clear()
                room = self._limits.in_flight_max - len(sending)
                if room > 0:
                    try:
                        claimed = await self._claim(room)
                    except Exception:  # noqa: BLE001  (a failed claim, e.g. the database restarting, is retried)
                        _log.exception("webhook_claim_failed")
                        claimed = []
                    for row in claimed:
                        sending[asyncio.create_task(self._attempt(row))] = row["endpoint_id"]
                waking = asyncio.create_task(wake.wait())
                done, _ = await asyncio.wait(
                    {*sending, waking, stopping}, timeout=self._limits.poll_interval_s, return_when=asyncio.FIRST_COMPLETED
                )
                waking.cancel()
                self._hand_over([task for task in sending if task in done], sending, answered)
            if sending:
                finished, _ = await asyncio.wait(sending, timeout=STOP_GRACE_S)
                self._hand_over(list(finished), sending, answered)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.join(), timeout=STOP_GRACE_S)
        finally:
            for task in (*sending, *helpers, stopping):
                task.cancel()
            await asyncio.gather(*sending, *helpers, stopping, return_exceptions=True)
            await self.close()

    def _hand_over(
        self, done: Sequence[asyncio.Task[Answer]], sending: dict[asyncio.Task[Answer], str], answered: asyncio.Queue[Answer]
    ) -> None:
        """Free the finished attempts' slots and queue their answers for the recorder."""
        for task in done:
            self._in_flight[sending.pop(task)] -= 1
            if task.exception() is not None:
                # A bug, not an answer: logged, and the delivery is tried again when its claim lapses.
                _log.error("webhook_attempt_crashed", exc_info=task.exception())
                continue
            answered.put_nowait(task.result())
        # Endpoints with nothing in flight leave the count the claim is given.
        self._in_flight += Counter()

    async def _record_forever(self, answered: asyncio.Queue[Answer]) -> None:
        while True:
            batch = [await answered.get()]
            while not answered.empty() and len(batch) < RECORD_BATCH_MAX:
                batch.append(answered.get_nowait())
            try:
                await self._record(batch)
            except Exception:  # noqa: BLE001  (unrecorded attempts are made again when their claim lapses)
                _log.exception("webhook_record_failed", deliveries=len(batch))
            finally:
                for _ in batch:
                    answered.task_done()

    async def _claim(self, room: int) -> list[AnyRow]:
        now = self._database.clock.now()
        # One statement, its own transaction: a round trip.
        async with self._database.connection() as connection:
            claimed = await repository.claim_due(
                connection,
                now=now,
                in_flight=dict(self._in_flight),
                per_endpoint_max=self._limits.per_endpoint_max,
                limit=room,
                lease_until=now + timedelta(seconds=self._limits.timeout_s) + LEASE_MARGIN,
                after_endpoint_id=self._last_endpoint,
            )
        for row in claimed:
            self._in_flight[row["endpoint_id"]] += 1
        if claimed:
            self._last_endpoint = claimed[-1]["endpoint_id"]
        return claimed

    def _signing_secrets(self, row: AnyRow, now: datetime) -> list[str]:
        secrets = [self._secrets.open(row["endpoint_id"], row["secret_sealed"])]
        expires_at = row["previous_secret_expires_at"]
        if row["previous_secret_sealed"] is not None and expires_at is not None and expires_at > now:
            secrets.append(self._secrets.open(row["endpoint_id"], row["previous_secret_sealed"]))
        return secrets

    async def _attempt(self, row: AnyRow) -> Answer:
        attempted_at = self._database.clock.now()
        started = time.perf_counter()

        def answer(
            *,
            status_code: int | None = None,
            retry_after: str | None = None,
            response_body: str | None = None,
            error: str | None = None,
            hopeless: bool = False,
        ) -> Answer:
            return Answer(
                delivery=row,
                attempted_at=attempted_at,
                duration_ms=round((time.perf_counter() - started) * 1000),
                status_code=status_code,
                retry_after=retry_after,
                response_body=response_body,
                error=error,
                hopeless=hopeless,
            )

        event = events.to_resource(
            {
                "id": row["event_id"],
                "type": row["type"],
                "created_at": row["event_created_at"],
                "livemode": row["livemode"],
                "data": row["data"],
                "request_id": row["request_id"],
            }
        )
        body = orjson.dumps(event)
        if len(body) > PAYLOAD_BYTES_MAX:
            return answer(error=f"payload_too_large: {len(body)} bytes, more than {PAYLOAD_BYTES_MAX}", hopeless=True)
        try:
            url = check_url(row["url"], self._policies[row["livemode"]])
        except BastionError as refusal:
            return answer(error=f"url_not_allowed: {refusal}")
        timestamp_s, secrets = unix_seconds(attempted_at), self._signing_secrets(row, attempted_at)
        headers = {
            **signature_headers(row["signature_scheme"], row["event_id"], timestamp_s, body, secrets),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
        }
        session = self._session(row["livemode"])
        try:
            async with (
                asyncio.timeout(self._limits.timeout_s),
                session.post(url, data=body, headers=headers, allow_redirects=False, proxy=self._proxy_url) as response,
            ):
                kept = b""
                while len(kept) < RESPONSE_BODY_KEPT_BYTES:
                    chunk = await response.content.read(RESPONSE_BODY_KEPT_BYTES - len(kept))
                    if not chunk:
                        break
                    kept += chunk
                return answer(
                    status_code=response.status,
                    retry_after=response.headers.get("retry-after"),
                    response_body=kept_response_body(kept),
                )
        except TimeoutError:
            return answer(error=f"timeout: no answer within {self._limits.timeout_s:g} s")
        except aiohttp.ClientConnectorError as failure:
            # aiohttp's own wording names TLS ("ssl:default") even for http: the reason alone.
            reason = failure.os_error.strerror or str(failure.os_error)
            return answer(error=f"connection_error: cannot connect to {failure.host}:{failure.port}: {reason}"[:ERROR_LENGTH_MAX])
        except aiohttp.ClientError as failure:
            return answer(error=f"connection_error: {failure}"[:ERROR_LENGTH_MAX])

    def _sort(self, answers: Sequence[Answer]) -> _Recorded:
        recorded = _Recorded()
        for answer in answers:
            attempts_made = answer.delivery["attempts"] + 1
            now = answer.attempted_at + timedelta(milliseconds=answer.duration_ms)
            if answer.hopeless:
                verdict, next_attempt_at = Verdict.FAILED, None
            else:
                judgement = judge(
                    answer.status_code,
                    answer.retry_after,
                    attempts_made=attempts_made,
                    now=now,
                    rng=self._rng,
                    jitter_fraction=self._limits.jitter_fraction,
                )
                verdict, next_attempt_at = judgement.verdict, judgement.next_attempt_at
            outcome: dict[str, object] = {
                "id": answer.delivery["id"],
                "status": {Verdict.SUCCEEDED: "succeeded", Verdict.RETRY: "pending"}.get(verdict, "failed"),
                "next_attempt_at": next_attempt_at,
                "attempted_at": answer.attempted_at,
                "status_code": answer.status_code,
                "error": answer.error,
                "response_body": answer.response_body,
                "attempt_id": new_id(service.ATTEMPT_PREFIX),
                "duration_ms": answer.duration_ms,
                "succeeded": verdict is Verdict.SUCCEEDED,
            }
            if verdict in (Verdict.SUCCEEDED, Verdict.RETRY):
                recorded.common.append((answer, outcome))
            else:
                recorded.final.append((answer, outcome, verdict))
        return recorded

    async def _record(self, answers: Sequence[Answer]) -> None:
        recorded = self._sort(answers)
        if recorded.common:
            async with self._database.connection() as connection:
                await repository.record_attempts(connection, [outcome for _, outcome in recorded.common])
        # Rare: each in a unit of work of its merchant, with its event and audit row.
        for answer, outcome, verdict in recorded.final:
            await self._record_final(answer, outcome, verdict)
        now = self._database.clock.now()
        for endpoint_id, (tenant, failing_since) in _failing_endpoints(answers).items():
            if endpoint_failing_too_long(failing_since, now):
                reason = f"Every delivery failed for 5 days, since {failing_since.isoformat(timespec='seconds')}."
                async with self._database.unit_of_work(tenant, SENDER_ACTOR) as uow:
                    await service.disable_endpoint(uow, endpoint_id, reason)

    async def _record_final(self, answer: Answer, outcome: dict[str, object], verdict: Verdict) -> None:
        delivery = answer.delivery
        tenant = Tenant(delivery["merchant_id"], delivery["livemode"])
        async with self._database.unit_of_work(tenant, SENDER_ACTOR) as uow:
            (row,) = await repository.record_attempts(uow.connection, [outcome])
            if verdict is Verdict.ENDPOINT_GONE:
                await service.disable_endpoint(uow, delivery["endpoint_id"], "The endpoint answered 410 Gone.")
            else:
                service.dead_letter(uow, row)
        _log.warning(
            "webhook_delivery_failed_for_good",
            delivery_id=delivery["id"],
            endpoint_id=delivery["endpoint_id"],
            verdict=str(verdict),
            status_code=answer.status_code,
        )


def _succeeded(answer: Answer) -> bool:
    return answer.status_code is not None and 200 <= answer.status_code < 300


def _failing_endpoints(answers: Sequence[Answer]) -> dict[str, tuple[Tenant, datetime]]:
    """The endpoints that answered nothing but failures here and were already failing before
    these attempts, with the start of their failing spell."""
    succeeded = {answer.delivery["endpoint_id"] for answer in answers if _succeeded(answer)}
    return {
        answer.delivery["endpoint_id"]: (
            Tenant(answer.delivery["merchant_id"], answer.delivery["livemode"]),
            answer.delivery["failing_since"],
        )
        for answer in answers
        if answer.delivery["endpoint_id"] not in succeeded and answer.delivery["failing_since"] is not None
    }
