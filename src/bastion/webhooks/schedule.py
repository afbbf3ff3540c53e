"""When a delivery is tried again, and what an endpoint's answer means (docs/webhooks.md,
Retries): pure rules, the sender applies them.

A delivery is tried at once, then after 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h, each delay
spread by up to JITTER_FRACTION either way so that an endpoint back from an outage is not met by
every delivery at once; after the last it is dead-lettered. 2xx is success. Anything else,
redirects included (none is followed), is a failure to retry, except 410 Gone, which disables
the endpoint; 429 and 503 may say when to come back (`Retry-After`), which is honoured up to
RETRY_AFTER_MAX. An endpoint that has failed every delivery for ENDPOINT_FAILING_MAX is
disabled."""

import enum
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Final

RETRY_DELAYS: Final = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
ATTEMPTS_MAX: Final = 1 + len(RETRY_DELAYS)
JITTER_FRACTION: Final = 0.1
RETRY_AFTER_MAX: Final = timedelta(hours=10)
ENDPOINT_FAILING_MAX: Final = timedelta(days=5)
DELIVERY_TIMEOUT_S: Final = 15.0
RESPONSE_BODY_KEPT_BYTES: Final = 1024
# A delivery's body, the event as GET /v1/events/{id} answers it, is never larger.
PAYLOAD_BYTES_MAX: Final = 262_144
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_GONE = 410


class Verdict(enum.StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"
    # Retries exhausted: the delivery is dead-lettered, its last answer kept.
    FAILED = "failed"
    # 410 Gone: the receiver asks for no more deliveries; the endpoint is disabled.
    ENDPOINT_GONE = "endpoint_gone"


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    # When to try again (RETRY only).
    next_attempt_at: datetime | None = None


def judge(
    status_code: int | None,
    retry_after: str | None,
    *,
    attempts_made: int,
    now: datetime,
    rng: random.Random,
    jitter_fraction: float = JITTER_FRACTION,
) -> Judgement:
    """What follows the `attempts_made`-th attempt (1 for the first), which the endpoint answered
    with `status_code` (None: no answer, a timeout or a refused connection) and `Retry-After`."""
    if status_code is not None and 200 <= status_code < 300:
        return Judgement(Verdict.SUCCEEDED)
    if status_code == _GONE:
        return Judgement(Verdict.ENDPOINT_GONE)
    if attempts_made >= ATTEMPTS_MAX:
        return Judgement(Verdict.FAILED)
    delay = _jittered(RETRY_DELAYS[attempts_made - 1], jitter_fraction, rng)
    asked = retry_after_delay(retry_after, now) if status_code in _RETRY_AFTER_STATUSES else None
    if asked is not None:
        delay = min(asked, RETRY_AFTER_MAX)
    return Judgement(Verdict.RETRY, now + delay)


def retry_after_delay(value: str | None, now: datetime) -> timedelta | None:
    """A `Retry-After` header (delay seconds, or an HTTP date) as a delay from `now`; None when
    absent or unreadable, and never negative."""
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return timedelta(seconds=int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when - now, timedelta(0))


def endpoint_failing_too_long(failing_since: datetime | None, now: datetime) -> bool:
    """Whether an endpoint whose deliveries have all failed since `failing_since` (None: it is
    not failing) is to be disabled."""
    return failing_since is not None and now - failing_since >= ENDPOINT_FAILING_MAX


def kept_response_body(body: bytes) -> str:
    """What of an endpoint's answer is kept with the attempt: its first RESPONSE_BODY_KEPT_BYTES,
    as text (bytes that are not UTF-8 replaced)."""
    return body[:RESPONSE_BODY_KEPT_BYTES].decode("utf-8", errors="replace")


def _jittered(delay: timedelta, fraction: float, rng: random.Random) -> timedelta:
    return delay * (1 + rng.uniform(-fraction, fraction))
