"""`bastion listen`: a test-mode merchant's events printed as they happen and forwarded, signed
per Standard Webhooks with a secret printed at start, to a server on the developer's machine
(docs/webhooks.md). It is a client of the API (`GET /v1/events` with a test key) and touches no
database, so it works against any Bastion the developer can reach."""

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

import httpx
import orjson
import typer

import bastion
from bastion.cli.common import fail
from bastion.platform.http.outbound import DestinationPolicy, DestinationRefused, check_url, guarded_client
from bastion.platform.pagination import LIMIT_MAX
from bastion.webhooks.domain import ALL_EVENTS, ENABLED_EVENTS_MAX, event_pattern_problem, new_secret, secret_problem, subscribed
from bastion.webhooks.schedule import DELIVERY_TIMEOUT_S
from bastion.webhooks.signing import signature_headers

API_URL_DEFAULT = "http://127.0.0.1:8000"
API_TIMEOUT_S = 10.0
POLL_INTERVAL_S_DEFAULT = 0.5
POLL_INTERVAL_S_MIN = 0.1
POLL_INTERVAL_S_MAX = 60.0
# While the API cannot be reached or answers 429 or 5xx, asking again after 0.5 s, doubling to 10 s.
RETRY_DELAY_S_MIN = 0.5
RETRY_DELAY_S_MAX = 10.0
# Events become visible when their transactions commit, not in the order of their ids: one whose
# transaction commits after a later one's has an id below ids already seen. So the poll's cursor
# trails by LOOKBACK_S: each event seen is asked for again until LOOKBACK_S after it was first
# seen, and skipped by id. At most LOOKBACK_EVENTS_MAX are held; beyond that (a burst) the
# cursor moves on sooner.
LOOKBACK_S = 5.0
LOOKBACK_EVENTS_MAX = 1000
# Where deliveries may go: what a test-mode webhook endpoint may use (loopback over http, public
# addresses over https), through the guard that checks the address at every connection.
FORWARD_POLICY = DestinationPolicy(allow_loopback_http=True)
_EVENTS_PATH = "/v1/events"
_OPENAPI_PATH = "/openapi.json"
_REFUSED_KEY = frozenset({401, 403})

Event = dict[str, Any]


class Echo(Protocol):
    def __call__(self, message: str, *, err: bool = False) -> None: ...


class ListenError(Exception):
    """What stops `listen` for good: the API refused the key, the events asked for name no event
    type, the API is not one that lists events."""


@dataclass(frozen=True)
class Forwarding:
    url: str
    secret: str
    client: httpx.AsyncClient


def key_problem(api_key: str) -> str | None:
    """Why `api_key` is not for listen (None when it is), without ever repeating the key."""
    if api_key.startswith("sk_live_"):
        return "bastion listen is for development: give it a test-mode secret key (sk_test_...), not a live one"
    if not api_key.startswith("sk_test_"):
        return "the API key must be a test-mode secret key (sk_test_...)"
    return None


def event_patterns(values: Sequence[str]) -> list[str]:
    """`--events` given several times or comma-separated, each once, in the order given (all
    events when none)."""
    patterns = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return list(dict.fromkeys(patterns)) or [ALL_EVENTS]


def event_line(event: Event) -> str:
    """`2026-12-06 10:00:00  --> payment_intent.succeeded [evt_...]`, the event's time in local time."""
    created = datetime.fromtimestamp(event["created"], UTC).astimezone()
    return f"{created:%Y-%m-%d %H:%M:%S}  --> {event['type']} [{event['id']}]"


def _described(error: httpx.HTTPError) -> str:
    # Timeouts often carry no message of their own.
    return str(error) or type(error).__name__


def _api_message(response: httpx.Response) -> str:
    """The API's error message (its error body never carries the key), or its status."""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return str(response.json()["error"]["message"])
    return f"HTTP {response.status_code}"


class _Seen:
    """The events of the last LOOKBACK_S, and the cursor the poll starts after."""

    def __init__(self, cursor: str | None) -> None:
        self.cursor = cursor
        self._recent: deque[tuple[str, float]] = deque()
        self._ids: set[str] = set()

    def add(self, event_id: str, seen_at: float) -> bool:
        """Whether `event_id` is new; if it is, it is held for the lookback."""
        if event_id in self._ids:
            return False
        self._ids.add(event_id)
        self._recent.append((event_id, seen_at))
        return True

    def forget(self, before: float) -> None:
        """Let go of the events first seen before `before` (and the oldest beyond
        LOOKBACK_EVENTS_MAX); the cursor moves to the newest id let go of."""
        while self._recent and (self._recent[0][1] < before or len(self._recent) > LOOKBACK_EVENTS_MAX):
            event_id, _ = self._recent.popleft()
            self._ids.discard(event_id)
            # Ids sort by creation (DESIGN.md 4); one committed late is let go of after ids above it.
            if self.cursor is None or event_id > self.cursor:
                self.cursor = event_id


class _Listener:
    def __init__(self, api: httpx.AsyncClient, echo: Echo, *, print_json: bool) -> None:
        self._api = api
        self._echo = echo
        self._print_json = print_json
        self._unavailable = False

    def say(self, message: str) -> None:
        # With --print-json, stdout holds only the events' JSON, one per line, for jq and the like.
        self._echo(message, err=self._print_json)

    def show(self, event: Event) -> None:
        if self._print_json:
            self._echo(orjson.dumps(event).decode())
        else:
            self._echo(event_line(event))

    async def get(self, path: str, params: dict[str, str | int] | None = None) -> Any:
        """The JSON of a 200 answer, asking again while the API is down or busy."""
        delay_s = RETRY_DELAY_S_MIN
        while True:
            try:
                response = await self._api.get(path, params=params)
            except httpx.TransportError as error:
                problem = f"cannot reach the API at {self._api.base_url}: {_described(error)}"
            else:
                if response.status_code in _REFUSED_KEY:
                    raise ListenError(f"the API refused the key ({response.status_code}): {_api_message(response)}")
                if response.status_code == httpx.codes.OK:
                    if self._unavailable:
                        self._echo("the API answers again", err=True)
                        self._unavailable = False
                    try:
                        return response.json()
                    except ValueError:
                        raise ListenError(f"{self._api.base_url}{path} did not answer JSON: is it Bastion's API?") from None
                status = response.status_code
                if status != httpx.codes.TOO_MANY_REQUESTS and status < httpx.codes.INTERNAL_SERVER_ERROR:
                    raise ListenError(f"GET {path} answered {response.status_code}: {_api_message(response)}")
                problem = f"the API answered {response.status_code}: {_api_message(response)}"
            self._unavailable = True
            self._echo(f"{problem}; asking again in {delay_s:g} s", err=True)
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_DELAY_S_MAX)

    async def event_types(self) -> frozenset[str]:
        """The event types the API knows: the values its OpenAPI document allows for
        `GET /v1/events?type=`."""
        document = await self.get(_OPENAPI_PATH)
        try:
            parameters = document["paths"][_EVENTS_PATH]["get"]["parameters"]
            return frozenset(next(each for each in parameters if each["name"] == "type")["schema"]["enum"])
        except (KeyError, TypeError, StopIteration):
            raise ListenError(f"{self._api.base_url}{_OPENAPI_PATH} lists no event types: is it Bastion's API?") from None

    async def newest_id(self) -> str | None:
        page = await self.get(_EVENTS_PATH, {"limit": 1})
        return page["data"][0]["id"] if page["data"] else None

    async def events_after(self, cursor: str | None) -> AsyncIterator[Event]:
        """Every event after `cursor` (every event when None), oldest first."""
        if cursor is None:
            # No event existed at start, so every one is new: read newest first back to the
            # first (a page at a time, `starting_after`), then hand them out oldest first.
            newest_first: list[Event] = []
            params: dict[str, str | int] = {"limit": LIMIT_MAX}
            while True:
                page = await self.get(_EVENTS_PATH, params)
                newest_first.extend(page["data"])
                if not page["has_more"]:
                    break
                params["starting_after"] = page["data"][-1]["id"]
            for event in reversed(newest_first):
                yield event
            return
        while True:
            # `ending_before` pages towards the newest: each page holds the events just after the
            # cursor, newest first.
            page = await self.get(_EVENTS_PATH, {"limit": LIMIT_MAX, "ending_before": cursor})
            for event in reversed(page["data"]):
                yield event
            if not page["has_more"]:
                return
            cursor = page["data"][0]["id"]

    async def forward(self, forwarding: Forwarding, event: Event) -> None:
        # The bytes signed are the bytes sent.
        body = orjson.dumps(event)
        headers = signature_headers("standard_webhooks", event["id"], int(time.time()), body, [forwarding.secret]) | {
            "content-type": "application/json",
            "user-agent": f"Bastion/{bastion.__version__} (bastion listen)",
        }
        try:
            response = await forwarding.client.post(forwarding.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            self.say(f"<-- [ERROR] POST {forwarding.url} [{event['id']}]: {_described(error)}")
            return
        self.say(f"<-- [{response.status_code}] POST {forwarding.url} [{event['id']}]")


async def listen(
    api: httpx.AsyncClient,
    echo: Echo,
    *,
    patterns: Sequence[str] = (ALL_EVENTS,),
    forwarding: Forwarding | None = None,
    print_json: bool = False,
    interval_s: float = POLL_INTERVAL_S_DEFAULT,
    max_events: int | None = None,
) -> None:
    """Print, and forward when `forwarding` is given, each event matching `patterns` that the API
    (`api`: its base URL and the key's header) lists after this starts; until `max_events` have
    been, or forever. ListenError when it cannot go on."""
    listener = _Listener(api, echo, print_json=print_json)
    known = await listener.event_types()
    if problems := [problem for pattern in patterns if (problem := event_pattern_problem(pattern, known)) is not None]:
        raise ListenError(f"--events: {'; '.join(problems)}")
    seen = _Seen(await listener.newest_id())
    if forwarding is not None:
        listener.say(f"Your webhook signing secret is {forwarding.secret} (verify deliveries with it)")
    listener.say("Ready! Listening for events... (^C to quit)")
    shown = 0
    while max_events is None or shown < max_events:
        started_at = time.monotonic()
        async for event in listener.events_after(seen.cursor):
            if not seen.add(event["id"], time.monotonic()) or not subscribed(patterns, event["type"]):
                continue
            listener.show(event)
            if forwarding is not None:
                await listener.forward(forwarding, event)
            shown += 1
            if shown == max_events:
                return
        seen.forget(started_at - LOOKBACK_S)
        await asyncio.sleep(interval_s)


def listen_command(
    *,
    api_key: Annotated[
        str,
        typer.Option(
            "--api-key",
            envvar="BASTION_API_KEY",
            show_default=False,
            help="A test-mode secret key, sk_test_... Prefer the environment variable: a command line is visible to others.",
        ),
    ],
    api_url: Annotated[str, typer.Option("--api-url", envvar="BASTION_API_URL", help="The Bastion API.")] = API_URL_DEFAULT,
    forward_to: Annotated[
        str | None,
        typer.Option(
            "--forward-to",
            show_default=False,
            help="POST each event, signed, to this URL: http to localhost or 127.0.0.1, or https to a public address.",
        ),
    ] = None,
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events", show_default=False, help="Only these events: types, prefixes (charge.*) or *; repeatable, or commas."
        ),
    ] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            envvar="BASTION_LISTEN_SECRET",
            show_default=False,
            help="Sign with this whsec_... secret instead of a new one, so that the receiver's configuration keeps working.",
        ),
    ] = None,
    print_json: Annotated[
        bool, typer.Option("--print-json", help="Print each event's JSON on one line; every other line goes to stderr.")
    ] = False,
    interval_s: Annotated[
        float, typer.Option("--interval", min=POLL_INTERVAL_S_MIN, max=POLL_INTERVAL_S_MAX, help="Seconds between polls.")
    ] = POLL_INTERVAL_S_DEFAULT,
    max_events: Annotated[
        int | None, typer.Option("--max-events", min=1, show_default=False, help="Stop after printing this many events.")
    ] = None,
) -> None:
    """Print the events of a test-mode merchant as they happen (those after it starts), and forward
    each, signed with a printed secret, to a server on your machine: for local development."""
    if (problem := key_problem(api_key)) is not None:
        raise fail(problem)
    patterns = event_patterns(events or [])
    if len(patterns) > ENABLED_EVENTS_MAX:
        raise fail(f"--events: at most {ENABLED_EVENTS_MAX} patterns")
    if secret is not None and (problem := secret_problem(secret)) is not None:
        raise fail(f"--secret: {problem}")
    if secret is not None and forward_to is None:
        raise fail("--secret signs what is forwarded: give --forward-to too")
    if httpx.URL(api_url).scheme not in {"http", "https"}:
        raise fail(f"--api-url: give an http or https URL, such as {API_URL_DEFAULT}")
    try:
        url = None if forward_to is None else check_url(forward_to, FORWARD_POLICY)
    except DestinationRefused as error:
        raise fail(f"--forward-to: {error.message}") from None

    async def run() -> None:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with (
            httpx.AsyncClient(base_url=api_url, headers=headers, timeout=API_TIMEOUT_S) as api,
            guarded_client(FORWARD_POLICY, timeout_s=DELIVERY_TIMEOUT_S) as forward_client,
        ):
            forwarding = None if url is None else Forwarding(url, secret or new_secret(), forward_client)
            listening = asyncio.create_task(
                listen(
                    api,
                    typer.echo,
                    patterns=patterns,
                    forwarding=forwarding,
                    print_json=print_json,
                    interval_s=interval_s,
                    max_events=max_events,
                )
            )
            # Ctrl-C and SIGTERM end it at once, a delivery in flight included, and exit 0.
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, listening.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await listening

    try:
        asyncio.run(run())
    except ListenError as error:
        raise fail(str(error)) from None
