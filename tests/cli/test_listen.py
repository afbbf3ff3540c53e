"""`bastion listen` against the real API: it prints and forwards only what happens after it
starts, signed so that the official `standardwebhooks` verifier accepts each delivery with the
printed secret; it filters by `--events`, pages past 100 new events, catches an event whose
transaction commits after later ones, reports a failing receiver and goes on, waits for an API
that is down, and refuses live keys, unknown patterns and destinations outside the SSRF guard."""

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from standardwebhooks.webhooks import Webhook

from bastion.cli.listen import FORWARD_POLICY, Forwarding, ListenError, listen
from bastion.kernel.ids import new_id
from bastion.platform.http.outbound import guarded_client
from bastion.platform.pagination import LIMIT_MAX
from bastion.webhooks.domain import new_secret
from bastion.webhooks.schedule import DELIVERY_TIMEOUT_S
from tests.support.asgi import request_body, serving
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess

WAIT_TIMEOUT_S = 30.0
CHECK_INTERVAL_S = 0.01
# Quick polls keep the tests short.
INTERVAL_S = 0.1
# What listen asks the API before its second poll: the event types, the newest event, the first poll.
FIRST_POLL_REQUESTS = 3
LATE_AFTER_POLLS = 5
_EVENT_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  --> (?P<type>[a-z_.]+) \[(?P<id>evt_[0-9A-Z]{26})\]")
_SECRET_LINE = re.compile(r"Your webhook signing secret is (whsec_\S+) ")


@dataclass
class Console:
    """What listen printed, stdout and stderr apart."""

    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def __call__(self, message: str, *, err: bool = False) -> None:
        (self.err if err else self.out).append(message)

    def events(self) -> list[tuple[str, str]]:
        """(type, id) of each event line, in order."""
        return [(match["type"], match["id"]) for line in self.out if (match := _EVENT_LINE.fullmatch(line))]

    def secret(self) -> str:
        found = [match[1] for line in self.out + self.err if (match := _SECRET_LINE.match(line))]
        assert len(found) == 1, self.out
        return found[0]


@dataclass
class Receiver:
    """A webhook receiver: records each delivery, answers `statuses` in turn, then 200."""

    statuses: list[int] = field(default_factory=list)
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = await request_body(receive)
        self.deliveries.append(({name.decode(): value.decode() for name, value in scope["headers"]}, body))
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Each delivery's event, as the official verifier reads it with `secret`."""
        return [Webhook(secret).verify(body, headers) for headers, body in self.deliveries]


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, f"waited {WAIT_TIMEOUT_S} s for {what}"
        await asyncio.sleep(CHECK_INTERVAL_S)


@asynccontextmanager
async def _listening(api: httpx.AsyncClient, console: Console, **options: Any) -> AsyncIterator["asyncio.Task[None]"]:
    """listen() running until the block ends (the block awaits it to see it finish)."""
    task = asyncio.create_task(listen(api, console, **({"interval_s": INTERVAL_S} | options)))
    try:
        await _until(lambda: task.done() or any(line.startswith("Ready!") for line in console.out + console.err), "ready")
        if task.done():
            task.result()
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def _forwarding_to(receiver: Receiver) -> AsyncIterator[Forwarding]:
    with serving(receiver, name="webhook-receiver") as port:
        async with guarded_client(FORWARD_POLICY, timeout_s=DELIVERY_TIMEOUT_S) as client:
            yield Forwarding(f"http://localhost:{port}/webhook", new_secret(), client)


async def _finished(task: "asyncio.Task[None]") -> None:
    await asyncio.wait_for(task, WAIT_TIMEOUT_S)


async def test_prints_and_forwards_what_happens_after_it_starts(platform: Platform, merchant: Credentials) -> None:
    await platform.create_customer(merchant, name="Before")
    receiver = Receiver()
    console = Console()
    async with _forwarding_to(receiver) as forwarding, platform.client(merchant) as api:
        [before] = (await api.get("/v1/events", params={"limit": 1})).json()["data"]
        async with _listening(api, console, forwarding=forwarding, max_events=3) as task:
            first = await platform.create_customer(merchant, name="First")
            second = await platform.create_customer(merchant, name="Second")
            updated = await api.post(f"/v1/customers/{first['id']}", json={"name": "First, renamed"})
            assert updated.status_code == 200, updated.text
            await _finished(task)
        listed = (await api.get("/v1/events", params={"limit": 3})).json()["data"]
    expected = [(event["type"], event["id"]) for event in reversed(listed)]
    assert console.events() == expected
    assert [event_type for event_type, _ in expected] == ["customer.created", "customer.created", "customer.updated"]
    assert before["type"] == "customer.created"
    assert before["id"] not in str(console.out) + str(receiver.deliveries), "an event from before the start is left out"
    # The printed secret verifies every delivery, and each carries the event as the API lists it.
    delivered = receiver.verified(console.secret())
    assert delivered == list(reversed(listed))
    assert [event["data"]["object"]["id"] for event in delivered] == [first["id"], second["id"], first["id"]]
    for (headers, _), (_, event_id) in zip(receiver.deliveries, expected, strict=True):
        assert (headers["webhook-id"], headers["content-type"]) == (event_id, "application/json")
    assert [line for line in console.out if line.startswith("<--")] == [
        f"<-- [200] POST {forwarding.url} [{event_id}]" for _, event_id in expected
    ]
    assert console.err == []


async def test_only_the_events_asked_for_and_their_json(platform: Platform, merchant: Credentials) -> None:
    receiver = Receiver()
    console = Console()
    async with (
        _forwarding_to(receiver) as forwarding,
        platform.client(merchant) as api,
        _listening(api, console, patterns=["customer.updated"], forwarding=forwarding, print_json=True, max_events=1) as task,
    ):
        customer = await platform.create_customer(merchant, name="Filtered")
        await platform.create_customer(merchant, name="Not asked for")
        assert (await api.post(f"/v1/customers/{customer['id']}", json={"name": "Renamed"})).status_code == 200
        await _finished(task)
        newest = (await api.get("/v1/events", params={"limit": 1})).json()["data"][0]
    assert console.out == [orjson.dumps(newest).decode()], "stdout holds only the events' JSON"
    assert newest["type"] == "customer.updated"
    assert any(line.startswith("Ready!") for line in console.err)
    assert [event["id"] for event in receiver.verified(console.secret())] == [newest["id"]]


@pytest.mark.parametrize("events_before", [0, 1], ids=["no-event-at-start", "an-event-at-start"])
async def test_more_than_a_page_between_two_polls(platform: Platform, events_before: int) -> None:
    merchant = await platform.merchant()
    for n in range(events_before):
        await platform.create_customer(merchant, name=f"Before {n}")
    count = LIMIT_MAX + 30
    asked: list[httpx.URL] = []
    all_created = asyncio.Event()

    async def record(request: httpx.Request) -> None:
        asked.append(request.url)
        # The types, the newest event, then the first poll, which finds nothing new; the second
        # poll waits until every event is there, so that they are all new to it.
        if len(asked) > FIRST_POLL_REQUESTS:
            await all_created.wait()

    console = Console()
    async with (
        platform.client(merchant, event_hooks={"request": [record]}) as api,
        _listening(api, console, max_events=count) as task,
    ):
        await _until(lambda: len(asked) >= FIRST_POLL_REQUESTS, "the first poll")
        for n in range(count):
            await platform.create_customer(merchant, name=f"Customer {n}")
        all_created.set()
        await _finished(task)
        listed = (await api.get("/v1/events", params={"limit": LIMIT_MAX})).json()["data"]
        listed += (await api.get("/v1/events", params={"limit": LIMIT_MAX, "starting_after": listed[-1]["id"]})).json()["data"]
    printed = [event_id for _, event_id in console.events()]
    assert printed == [event["id"] for event in reversed(listed[:count])], "each once, oldest first"
    # The second page: towards the newest after the first page's newest (from a cursor), or
    # towards the oldest after the first page's oldest (nothing at start, so everything is new).
    second_page = asked[FIRST_POLL_REQUESTS + 1].params
    if events_before:
        assert second_page["ending_before"] == printed[LIMIT_MAX - 1]
    else:
        assert second_page["starting_after"] == printed[-LIMIT_MAX]


async def test_an_event_committed_after_later_ones_is_not_missed(platform: Platform, merchant: Credentials) -> None:
    # An event before the start: listen pages from a cursor, the case a late commit could slip behind.
    await platform.create_customer(merchant, name="Before")
    polls: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        polls.append(request)

    console = Console()
    async with (
        platform.client(merchant, event_hooks={"request": [record]}) as api,
        _listening(api, console, max_events=2) as task,
    ):
        async with platform.owner.transaction() as connection:
            # Its id is taken now, like emit's, and it becomes visible only at commit: after the
            # customer's event, whose id is greater.
            late = new_id("evt")
            await connection.execute(
                "INSERT INTO events (id, merchant_id, livemode, type, data) VALUES ($1, $2, false, 'customer.deleted', $3)",
                late,
                merchant.merchant_id,
                json.dumps({"object": {"id": "cus_late", "object": "customer", "deleted": True}}),
            )
            await platform.create_customer(merchant, name="Committed first")
            await _until(lambda: len(console.events()) == 1, "the customer's event")
            # Several polls pass with the customer's event seen (within LOOKBACK_S) before this commits.
            seen_at = len(polls)
            await _until(lambda: len(polls) >= seen_at + LATE_AFTER_POLLS, "more polls")
        await _finished(task)
    assert [event_type for event_type, _ in console.events()] == ["customer.created", "customer.deleted"]
    assert console.events()[1][1] == late < console.events()[0][1]


async def test_a_failing_receiver_is_reported_and_listen_goes_on(platform: Platform, merchant: Credentials) -> None:
    receiver = Receiver(statuses=[500])
    console = Console()
    async with (
        _forwarding_to(receiver) as forwarding,
        platform.client(merchant) as api,
        _listening(api, console, forwarding=forwarding, max_events=2) as task,
    ):
        await platform.create_customer(merchant, name="Refused")
        await platform.create_customer(merchant, name="Taken")
        await _finished(task)
    answers = [line.split(" ")[1] for line in console.out if line.startswith("<--")]
    assert answers == ["[500]", "[200]"]
    assert len(receiver.verified(console.secret())) == 2


async def test_a_receiver_that_is_not_there_is_reported(platform: Platform, merchant: Credentials) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{closed.getsockname()[1]}/webhook"
        console = Console()
        async with (
            guarded_client(FORWARD_POLICY, timeout_s=DELIVERY_TIMEOUT_S) as client,
            platform.client(merchant) as api,
            _listening(api, console, forwarding=Forwarding(url, new_secret(), client), max_events=1) as task,
        ):
            await platform.create_customer(merchant, name="Nobody home")
            await _finished(task)
    [result] = [line for line in console.out if line.startswith("<--")]
    assert result.startswith(f"<-- [ERROR] POST {url} [evt_")


async def test_an_api_that_is_down_is_waited_for(platform: Platform, merchant: Credentials) -> None:
    listening_socket = socket.socket()
    listening_socket.bind(("127.0.0.1", 0))
    port = listening_socket.getsockname()[1]
    console = Console()
    api = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=merchant.headers, timeout=10)
    task = asyncio.create_task(listen(api, console, interval_s=INTERVAL_S, max_events=1))
    server = uvicorn.Server(uvicorn.Config(platform.app, log_config=None, access_log=False, lifespan="off"))
    serving_task: asyncio.Task[None] | None = None
    try:
        await _until(lambda: len(console.err) >= 2, "two tries")
        # The app runs in this loop: its database pools belong to it.
        serving_task = asyncio.create_task(server.serve(sockets=[listening_socket]))
        await _until(lambda: any(line.startswith("Ready!") for line in console.out), "ready")
        await platform.create_customer(merchant, name="After the outage")
        await _finished(task)
    finally:
        task.cancel()
        server.should_exit = True
        if serving_task is not None:
            await asyncio.wait_for(serving_task, WAIT_TIMEOUT_S)
        await api.aclose()
        listening_socket.close()
    assert console.err[0].startswith(f"cannot reach the API at http://127.0.0.1:{port}: ")
    assert console.err[0].endswith("; asking again in 0.5 s")
    assert console.err[1].endswith("; asking again in 1 s"), "the delay doubles"
    assert console.err[-1] == "the API answers again"
    assert [event_type for event_type, _ in console.events()] == ["customer.created"]


async def test_refused_keys_and_unknown_patterns_stop_it(platform: Platform, merchant: Credentials) -> None:
    no_events = await platform.merchant(scopes=["customers:read"])
    console = Console()
    async with platform.client(merchant) as api:
        with pytest.raises(ListenError, match=r"'customer\.exploded' is not an event type.*'nothing\.\*' matches no event type"):
            await listen(api, console, patterns=["customer.*", "customer.exploded", "nothing.*"])
    async with platform.client(no_events) as api:
        with pytest.raises(ListenError, match=r"the API refused the key \(403\)"):
            await listen(api, console)
    unknown = Credentials(merchant.merchant_id, "key_unknown", "sk_test_" + "x" * 40, "pk_test_unknown")
    async with platform.client(unknown) as api:
        with pytest.raises(ListenError, match=r"the API refused the key \(401\): Invalid API key provided"):
            await listen(api, console)
    assert console.out == [], "nothing is printed before the API has said yes"


@pytest.mark.processes
@pytest.mark.parametrize(
    ("options", "env_key", "message"),
    [
        ([], "sk_live_" + "s" * 40, "bastion listen is for development: give it a test-mode secret key (sk_test_...)"),
        ([], "pk_test_" + "s" * 40, "the API key must be a test-mode secret key (sk_test_...)"),
        (["--events", "customer.exploded"], "sk_test_" + "s" * 40, "--events: 'customer.exploded' is not an event type"),
        (["--forward-to", "http://10.1.2.3/hook"], "sk_test_" + "s" * 40, "--forward-to: The URL's host is a private address"),
        (["--forward-to", "http://127.0.0.1:4242/", "--secret", "whsec_c2hvcnQ="], "sk_test_" + "s" * 40, "--secret: a signing"),
    ],
    ids=["live-key", "publishable-key", "unknown-event", "private-destination", "short-secret"],
)
async def test_the_command_refuses_with_one_line(api_process: ApiProcess, options: list[str], env_key: str, message: str) -> None:
    env = dict(os.environ) | {"BASTION_API_KEY": env_key, "BASTION_API_URL": api_process.url}
    ran = await run_bastion("listen", *options, env=env)
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert ran.stderr.startswith(f"error: {message}"), ran.stderr
    assert len(ran.stderr.splitlines()) == 1
    assert env_key not in ran.stdout + ran.stderr, "the key is never printed"


@pytest.mark.processes
async def test_the_command_forwards_until_sigterm(api_process: ApiProcess, platform: Platform, merchant: Credentials) -> None:
    receiver = Receiver()
    secret = new_secret()
    env = dict(os.environ) | {"BASTION_API_KEY": merchant.secret, "BASTION_API_URL": api_process.url}
    env["BASTION_LISTEN_SECRET"] = secret
    with serving(receiver, name="webhook-receiver") as port:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bastion",
            "listen",
            "--forward-to",
            f"http://127.0.0.1:{port}/webhook",
            "--events",
            "customer.*,charge.*",
            "--interval",
            str(INTERVAL_S),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        lines: list[str] = []
        try:
            async with asyncio.timeout(WAIT_TIMEOUT_S):
                while not lines or not lines[-1].startswith("Ready!"):
                    lines.append((await process.stdout.readline()).decode().rstrip("\n"))
                async with httpx.AsyncClient(base_url=api_process.url, headers=merchant.headers) as api:
                    created = (await api.post("/v1/customers", json={"name": "Over the wire"})).json()
                while not lines[-1].startswith("<--"):
                    lines.append((await process.stdout.readline()).decode().rstrip("\n"))
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), WAIT_TIMEOUT_S)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert lines[0] == f"Your webhook signing secret is {secret} (verify deliveries with it)"
    [delivered] = receiver.verified(secret)
    assert delivered["data"]["object"]["id"] == created["id"]
    assert _EVENT_LINE.fullmatch(lines[-2])
    assert lines[-1] == f"<-- [200] POST http://127.0.0.1:{port}/webhook [{delivered['id']}]"
    assert merchant.secret not in "\n".join(lines) + stderr.decode()
