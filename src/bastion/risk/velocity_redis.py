"""The velocity counters in Redis (ADR 22), for installs whose confirms outgrow one PostgreSQL's
row locks: `BASTION_RISK_VELOCITY_REDIS_URL`.

Exact as the PostgreSQL store is: an attempt is counted, and its counts read, by one Lua script,
which Redis runs alone; so of two attempts on a subject the later sees the earlier, and 100
concurrent attempts on one card see 1 to 100. An attempt's hash records that it was counted, so
a resumed command counts it once, and that its outcome was recorded, so that is once too.

Keys, all of a merchant and mode under one hash tag (one Redis Cluster slot, so a script may
take several subjects): `bastion:velocity:{<merchant>:<mode>}:` and then
- `attempt:<id>`: when it was counted, its subjects and its outcome; kept ATTEMPT_KEPT;
- `<subject>:totals`: all-time attempts, charges, declines and amount (cents);
- `<subject>:events`: the last week's attempts, scored by their time (µs), each
  `<cents>:<attempt id>`; `:charges` and `:declines` likewise, by attempt id;
- `<subject>:cards`: the cards seen with an IP address, a device or a customer, scored by when last.

Amounts are whole cents, which Redis adds exactly. Times are microseconds since the epoch: Lua's
numbers hold them exactly (below 2^53), and they reach the scripts as text, never reformatted."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import redis.asyncio
import redis.exceptions

from bastion.platform.db import Tenant, UnitOfWork
from bastion.platform.logging import get_logger
from bastion.risk.velocity import MEASURES, PRUNED_AFTER, Counted, Tally, Velocity, VelocityUnavailable

KEY_PREFIX: Final = "bastion:velocity:"
# An attempt's record outlives the longest window, for outcomes told days later (a sync).
ATTEMPT_KEPT = timedelta(days=8)
TIMEOUT_S: Final = 1.0
CONNECTIONS_MAX: Final = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WINDOWS = ("hourly", "daily", "weekly", "all_time")

_log = get_logger(__name__)

# KEYS: the attempt's hash, then per subject its totals, events, charges, declines and cards.
# ARGV: attempt id, time, cents, card fingerprint (or ''), the starts of the hour, day and week,
# the prune limit, the attempt's lifetime (ms), its subjects (JSON), then per subject '1' when its
# distinct cards are counted. Answers per subject: attempts, charges, declines and cents over the
# hour, day, week and all time, then distinct cards over the same, then 1 when its card is new to it.
_COUNT = """
local attempt_id, at, cents, card = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local starts = {ARGV[5], ARGV[6], ARGV[7]}
local first = redis.call('HSETNX', KEYS[1], 'at', at) == 1
if first then
    redis.call('HSET', KEYS[1], 'outcome', 'pending', 'subjects', ARGV[10])
    redis.call('PEXPIRE', KEYS[1], ARGV[9])
end
local answers = {}
for i = 0, (#KEYS - 1) / 5 - 1 do
    local b = 1 + 5 * i
    local totals, events, charges, declines, cards = KEYS[b + 1], KEYS[b + 2], KEYS[b + 3], KEYS[b + 4], KEYS[b + 5]
    local counts_cards = ARGV[11 + i] == '1' and card ~= ''
    local new_card = 0
    if first then
        redis.call('ZADD', events, at, cents .. ':' .. attempt_id)
        redis.call('HINCRBY', totals, 'attempts', 1)
        redis.call('HINCRBY', totals, 'amount', cents)
        if counts_cards then
            -- GT: a card's time only moves forward; the answer counts the cards added.
            new_card = redis.call('ZADD', cards, 'GT', at, card)
            redis.call('HSET', KEYS[1], 'new:' .. i, new_card)
        end
    elseif counts_cards then
        new_card = tonumber(redis.call('HGET', KEYS[1], 'new:' .. i) or '0')
    end
    for _, set in ipairs({events, charges, declines}) do
        redis.call('ZREMRANGEBYSCORE', set, '-inf', ARGV[8])
    end
    local answer = {}
    for _, set in ipairs({events, charges, declines}) do
        for w = 1, 3 do
            answer[#answer + 1] = redis.call('ZCOUNT', set, '(' .. starts[w], '+inf')
        end
        answer[#answer + 1] = 0
    end
    local all_time = redis.call('HMGET', totals, 'attempts', 'charges', 'declines', 'amount')
    answer[4], answer[8], answer[12] = tonumber(all_time[1] or 0), tonumber(all_time[2] or 0), tonumber(all_time[3] or 0)
    local sums = {0, 0, 0}
    local week = redis.call('ZRANGEBYSCORE', events, '(' .. starts[3], '+inf', 'WITHSCORES')
    for e = 1, #week, 2 do
        local amount, score = tonumber(string.match(week[e], '^(%d+):')), tonumber(week[e + 1])
        for w = 1, 3 do
            if score > tonumber(starts[w]) then sums[w] = sums[w] + amount end
        end
    end
    answer[13], answer[14], answer[15], answer[16] = sums[1], sums[2], sums[3], tonumber(all_time[4] or 0)
    for w = 1, 3 do
        answer[#answer + 1] = redis.call('ZCOUNT', cards, '(' .. starts[w], '+inf')
    end
    answer[#answer + 1] = redis.call('ZCARD', cards)
    answer[#answer + 1] = new_card
    answers[#answers + 1] = answer
end
return answers
"""

# KEYS: the attempt's hash, then per subject its totals, charges and declines. ARGV: the attempt
# id and its outcome. Recorded only while the attempt's outcome is pending: once.
_RECORD = """
local at = redis.call('HGET', KEYS[1], 'at')
if not at or redis.call('HGET', KEYS[1], 'outcome') ~= 'pending' then
    return 0
end
redis.call('HSET', KEYS[1], 'outcome', ARGV[2])
local succeeded = ARGV[2] == 'succeeded'
for i = 0, (#KEYS - 1) / 3 - 1 do
    redis.call('HINCRBY', KEYS[2 + 3 * i], succeeded and 'charges' or 'declines', 1)
    redis.call('ZADD', succeeded and KEYS[3 + 3 * i] or KEYS[4 + 3 * i], at, ARGV[1])
end
return 1
"""


class RedisVelocity(Velocity):
    """The counts in the Redis at `url` (`redis://` or, with TLS, `rediss://`; a password and a
    database number go in the URL)."""

    def __init__(self, url: str) -> None:
        self.client = redis.asyncio.Redis.from_url(
            url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, max_connections=CONNECTIONS_MAX
        )
        self._count = self.client.register_script(_COUNT)
        self._record = self.client.register_script(_RECORD)

    async def count(
        self, uow: UnitOfWork, attempt: Counted, subjects: list[str], card_subjects: list[str]
    ) -> tuple[dict[str, Tally], set[str]]:
        prefix = _prefix(uow.tenant)
        keys = [f"{prefix}attempt:{attempt.attempt_id}"]
        for subject in subjects:
            keys += [f"{prefix}{subject}:{part}" for part in ("totals", "events", "charges", "declines", "cards")]
        starts = attempt.window_starts()
        arguments = [
            attempt.attempt_id,
            _microseconds(attempt.at),
            0 if attempt.amount_in_usd is None else _cents(attempt.amount_in_usd),
            attempt.card_fingerprint or "",
            *(_microseconds(starts[window]) for window in ("hourly", "daily", "weekly")),
            _microseconds(attempt.at - PRUNED_AFTER),
            int(ATTEMPT_KEPT.total_seconds() * 1000),
            json.dumps(subjects),
            *("1" if subject in card_subjects else "0" for subject in subjects),
        ]
        answers: list[list[int]] = await self._call(self._count, keys, arguments)
        tallies: dict[str, Tally] = {}
        first_seen: set[str] = set()
        for subject, answer in zip(subjects, answers, strict=True):
            tally: dict[str, int | Decimal] = {}
            for m, measure in enumerate(MEASURES):
                for w, window in enumerate(_WINDOWS):
                    value = answer[4 * m + w]
                    tally[f"{measure}_{window}"] = Decimal(value).scaleb(-2) if measure == "amount_in_usd" else value
            for w, window in enumerate(_WINDOWS):
                tally[f"cards_{window}"] = answer[16 + w]
            tallies[subject] = tally
            if answer[20]:
                first_seen.add(subject)
        return tallies, first_seen

    async def record(self, uow: UnitOfWork, attempt_id: str, outcome: str) -> None:
        # A lost outcome costs a charge or a decline in the counts; a payment stopped for it
        # would cost the payment: it is logged, and the payment goes on.
        prefix = _prefix(uow.tenant)
        attempt_key = f"{prefix}attempt:{attempt_id}"
        try:
            subjects = await self.client.hget(attempt_key, "subjects")
            if subjects is None:  # never counted: assessed with the engine off, or not in time
                return
            keys = [attempt_key]
            for subject in json.loads(subjects):
                keys += [f"{prefix}{subject}:{part}" for part in ("totals", "charges", "declines")]
            await self._record(keys=keys, args=[attempt_id, outcome])
        except redis.exceptions.RedisError as error:
            _log.warning("velocity_outcome_lost", attempt=attempt_id, outcome=outcome, error=type(error).__name__)

    async def _call(self, script: Any, keys: list[str], arguments: list[Any]) -> Any:
        try:
            return await script(keys=keys, args=arguments)
        except redis.exceptions.RedisError as error:
            raise VelocityUnavailable(f"Redis did not count the attempt: {type(error).__name__}") from error

    async def close(self) -> None:
        await self.client.aclose()


def _prefix(tenant: Tenant) -> str:
    return f"{KEY_PREFIX}{{{tenant.merchant_id}:{'live' if tenant.livemode else 'test'}}}:"


def _microseconds(at: datetime) -> str:
    return str((at - _EPOCH) // timedelta(microseconds=1))


def _cents(amount: Decimal) -> int:
    return int(amount.scaleb(2).to_integral_value())
