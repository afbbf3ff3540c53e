"""The retry schedule and what an endpoint's answer means: pure rules, checked at every attempt
and edge (Hypothesis for the jitter's bounds)."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.webhooks.schedule import (
    ATTEMPTS_MAX,
    ENDPOINT_FAILING_MAX,
    JITTER_FRACTION,
    RESPONSE_BODY_KEPT_BYTES,
    RETRY_AFTER_MAX,
    RETRY_DELAYS,
    Verdict,
    endpoint_failing_too_long,
    judge,
    kept_response_body,
    retry_after_delay,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SCHEDULE = [timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2)]
SCHEDULE += [timedelta(hours=5), timedelta(hours=10), timedelta(hours=10)]


def _rng() -> random.Random:
    return random.Random(15)  # noqa: S311  (jitter, not a secret: seeded for repeatable tests)


def test_the_schedule_is_the_documented_one() -> None:
    assert list(RETRY_DELAYS) == SCHEDULE
    assert ATTEMPTS_MAX == 8


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_success(status: int) -> None:
    assert judge(status, None, attempts_made=1, now=NOW, rng=_rng()).verdict == Verdict.SUCCEEDED


@pytest.mark.parametrize("status", [None, 301, 302, 307, 400, 401, 404, 429, 500, 502, 503, 504])
def test_anything_else_is_retried_on_schedule_until_exhausted(status: int | None) -> None:
    for attempts_made, delay in enumerate(SCHEDULE, start=1):
        judged = judge(status, None, attempts_made=attempts_made, now=NOW, rng=_rng(), jitter_fraction=0)
        assert (judged.verdict, judged.next_attempt_at) == (Verdict.RETRY, NOW + delay), attempts_made
    assert judge(status, None, attempts_made=ATTEMPTS_MAX, now=NOW, rng=_rng()).verdict == Verdict.FAILED


def test_410_gone_disables_the_endpoint_at_any_attempt() -> None:
    for attempts_made in (1, ATTEMPTS_MAX):
        assert judge(410, None, attempts_made=attempts_made, now=NOW, rng=_rng()).verdict == Verdict.ENDPOINT_GONE


@given(st.integers(min_value=1, max_value=ATTEMPTS_MAX - 1), st.integers(min_value=0, max_value=2**32))
def test_jitter_stays_within_its_fraction(attempts_made: int, seed: int) -> None:
    judged = judge(500, None, attempts_made=attempts_made, now=NOW, rng=random.Random(seed))  # noqa: S311  (jitter, not a secret)
    assert judged.next_attempt_at is not None
    delay, planned = judged.next_attempt_at - NOW, RETRY_DELAYS[attempts_made - 1]
    assert planned * (1 - JITTER_FRACTION) <= delay <= planned * (1 + JITTER_FRACTION)


@pytest.mark.parametrize(
    ("status", "retry_after", "delay"),
    [
        (429, "120", timedelta(seconds=120)),
        (503, "0", timedelta(0)),
        (503, "Sun, 06 Dec 2026 12:30:00 GMT", timedelta(minutes=30)),
        (429, "Sun, 06 Dec 2026 11:00:00 GMT", timedelta(0)),
        (429, str(10 * 24 * 3600), RETRY_AFTER_MAX),
        (429, "soon", SCHEDULE[0]),
        (500, "60", SCHEDULE[0]),
    ],
)
def test_retry_after_is_honoured_for_429_and_503_up_to_its_cap(status: int, retry_after: str, delay: timedelta) -> None:
    judged = judge(status, retry_after, attempts_made=1, now=NOW, rng=_rng(), jitter_fraction=0)
    assert (judged.verdict, judged.next_attempt_at) == (Verdict.RETRY, NOW + delay)


def test_retry_after_forms() -> None:
    assert retry_after_delay(None, NOW) is None
    assert retry_after_delay(" 30 ", NOW) == timedelta(seconds=30)
    assert retry_after_delay("-5", NOW) is None
    assert retry_after_delay("1.5", NOW) is None
    assert retry_after_delay("Sun, 06 Dec 2026 12:00:10 GMT", NOW) == timedelta(seconds=10)


def test_an_endpoint_failing_for_five_days_is_disabled() -> None:
    assert not endpoint_failing_too_long(None, NOW)
    assert not endpoint_failing_too_long(NOW - ENDPOINT_FAILING_MAX + timedelta(seconds=1), NOW)
    assert endpoint_failing_too_long(NOW - ENDPOINT_FAILING_MAX, NOW)


def test_the_kept_response_is_its_first_kibibyte() -> None:
    assert kept_response_body(b"ok") == "ok"
    assert kept_response_body(b"x" * 5000) == "x" * RESPONSE_BODY_KEPT_BYTES
    assert kept_response_body(b"\xff\xfe" + b"a") == "\ufffd\ufffda"
