"""All SQL of the risk context."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

# Every change of a merchant's rulesets and lists, in one mode, takes this lock first: versions
# are numbered without gaps or twins, a slot (live, shadow) changes hands in one order, and a
# list cannot be deleted while a ruleset that names it is being activated.
_LOCK_CONFIGURATION = "SELECT pg_advisory_xact_lock(hashtextextended('risk:' || $1 || ':' || $2::boolean::text, 0))"


async def lock_configuration(connection: Connection, tenant: Tenant) -> None:
    await connection.execute(_LOCK_CONFIGURATION, tenant.merchant_id, tenant.livemode)


# Rulesets.

_INSERT_RULESET = """
INSERT INTO risk_rulesets (id, merchant_id, livemode, version, status, description, rules, created_at)
SELECT $3, $1, $2, coalesce(max(version), 0) + 1, 'draft', $4, $5, $6
FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2
RETURNING *
"""
_RULESET = "SELECT * FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_RULESET_FOR_UPDATE = f"{_RULESET} FOR UPDATE"
_RULESET_EXISTS = "SELECT EXISTS (SELECT 1 FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_RULESET_IN_STATUS = "SELECT * FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2 AND status = $3"
# Paged by fetch_page; a null $3 lists every status.
_RULESETS = "SELECT * FROM risk_rulesets WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR status = $3)"
_SET_RULESET_STATUS = """
UPDATE risk_rulesets
SET status = $4,
    activated_at = CASE WHEN $4 IN ('live', 'shadow') THEN $5 ELSE activated_at END,
    retired_at = CASE WHEN $4 = 'retired' THEN $5 ELSE retired_at END
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""


async def insert_ruleset(
    connection: Connection,
    tenant: Tenant,
    *,
    ruleset_id: str,
    description: str | None,
    rules: list[dict[str, str]],
    created_at: datetime,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_RULESET, tenant.merchant_id, tenant.livemode, ruleset_id, description, rules, created_at
    )
    return row


async def get_ruleset(connection: Connection, tenant: Tenant, ruleset_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = _RULESET_FOR_UPDATE if for_update else _RULESET
    row: AnyRow | None = await connection.fetchrow(query, tenant.merchant_id, tenant.livemode, ruleset_id)
    return row


async def ruleset_exists(connection: Connection, tenant: Tenant, ruleset_id: str) -> bool:
    return bool(await connection.fetchval(_RULESET_EXISTS, tenant.merchant_id, tenant.livemode, ruleset_id))


async def ruleset_in_status(connection: Connection, tenant: Tenant, status: str) -> AnyRow | None:
    """The live or the shadow ruleset, if there is one."""
    row: AnyRow | None = await connection.fetchrow(_RULESET_IN_STATUS, tenant.merchant_id, tenant.livemode, status)
    return row


async def page_rulesets(connection: Connection, tenant: Tenant, request: PageRequest, status: str | None) -> Page:
    return await fetch_page(connection, _RULESETS, (tenant.merchant_id, tenant.livemode, status), request)


async def set_ruleset_status(connection: Connection, tenant: Tenant, ruleset_id: str, status: str, at: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_SET_RULESET_STATUS, tenant.merchant_id, tenant.livemode, ruleset_id, status, at)
    return row


# Lists and their items.

_INSERT_LIST = """
INSERT INTO risk_lists (id, merchant_id, livemode, alias, name, item_type, created_at)
VALUES ($3, $1, $2, $4, $5, $6, $7)
ON CONFLICT DO NOTHING
RETURNING *
"""
_LIST = "SELECT * FROM risk_lists WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_LIST_EXISTS = "SELECT EXISTS (SELECT 1 FROM risk_lists WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
_LIST_COUNT = "SELECT count(*) FROM risk_lists WHERE merchant_id = $1 AND livemode = $2"
_LIST_KINDS = "SELECT alias, item_type FROM risk_lists WHERE merchant_id = $1 AND livemode = $2"
_LISTS = "SELECT * FROM risk_lists WHERE merchant_id = $1 AND livemode = $2"
_DELETE_LIST = "DELETE FROM risk_lists WHERE merchant_id = $1 AND livemode = $2 AND id = $3"

_INSERT_ITEM = """
INSERT INTO risk_list_items (id, merchant_id, livemode, list_id, value, created_at)
VALUES ($3, $1, $2, $4, $5, $6)
ON CONFLICT DO NOTHING
RETURNING *
"""
_ITEM = "SELECT * FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3 AND id = $4"
_ITEM_BY_VALUE = "SELECT * FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3 AND value = $4"
_ITEM_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3 AND id = $4)"
)
_ITEM_COUNT = "SELECT count(*) FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3"
# Paged by fetch_page.
_ITEMS = "SELECT * FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3"
_DELETE_ITEM = "DELETE FROM risk_list_items WHERE merchant_id = $1 AND livemode = $2 AND list_id = $3 AND id = $4"


async def insert_list(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow | None:
    """The new list, or None when its alias is taken."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_LIST,
        tenant.merchant_id,
        tenant.livemode,
        values["id"],
        values["alias"],
        values["name"],
        values["item_type"],
        values["created_at"],
    )
    return row


async def get_list(connection: Connection, tenant: Tenant, list_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_LIST, tenant.merchant_id, tenant.livemode, list_id)
    return row


async def list_exists(connection: Connection, tenant: Tenant, list_id: str) -> bool:
    return bool(await connection.fetchval(_LIST_EXISTS, tenant.merchant_id, tenant.livemode, list_id))


async def count_lists(connection: Connection, tenant: Tenant) -> int:
    count: int = await connection.fetchval(_LIST_COUNT, tenant.merchant_id, tenant.livemode)
    return count


async def list_kinds(connection: Connection, tenant: Tenant) -> dict[str, str]:
    """alias -> item_type of every list of the merchant in this mode."""
    rows = await connection.fetch(_LIST_KINDS, tenant.merchant_id, tenant.livemode)
    return {row["alias"]: row["item_type"] for row in rows}


async def page_lists(connection: Connection, tenant: Tenant, request: PageRequest) -> Page:
    return await fetch_page(connection, _LISTS, (tenant.merchant_id, tenant.livemode), request)


async def delete_list(connection: Connection, tenant: Tenant, list_id: str) -> None:
    """The list and, by the foreign key's cascade, its items."""
    await connection.execute(_DELETE_LIST, tenant.merchant_id, tenant.livemode, list_id)


async def insert_item(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow | None:
    """The new item, or None when the list has this value already."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_ITEM,
        tenant.merchant_id,
        tenant.livemode,
        values["id"],
        values["list_id"],
        values["value"],
        values["created_at"],
    )
    return row


async def get_item(connection: Connection, tenant: Tenant, list_id: str, item_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_ITEM, tenant.merchant_id, tenant.livemode, list_id, item_id)
    return row


async def item_by_value(connection: Connection, tenant: Tenant, list_id: str, value: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_ITEM_BY_VALUE, tenant.merchant_id, tenant.livemode, list_id, value)
    return row


async def item_exists(connection: Connection, tenant: Tenant, list_id: str, item_id: str) -> bool:
    return bool(await connection.fetchval(_ITEM_EXISTS, tenant.merchant_id, tenant.livemode, list_id, item_id))


async def count_items(connection: Connection, tenant: Tenant, list_id: str) -> int:
    count: int = await connection.fetchval(_ITEM_COUNT, tenant.merchant_id, tenant.livemode, list_id)
    return count


async def page_items(connection: Connection, tenant: Tenant, list_id: str, request: PageRequest) -> Page:
    return await fetch_page(connection, _ITEMS, (tenant.merchant_id, tenant.livemode, list_id), request)


async def delete_item(connection: Connection, tenant: Tenant, list_id: str, item_id: str) -> None:
    await connection.execute(_DELETE_ITEM, tenant.merchant_id, tenant.livemode, list_id, item_id)


# Velocity (velocity.py). Subjects are taken in the order given (sorted), so that two attempts
# sharing subjects lock them in one order.

_COUNT_SUBJECTS = """
INSERT INTO risk_velocity_subjects AS s
    (merchant_id, livemode, subject, attempts, charges, declines, amount_in_usd, first_at, last_at)
SELECT $1, $2, subject, 1, 0, 0, coalesce($4::numeric, 0), $3, $3 FROM unnest($5::text[]) WITH ORDINALITY AS t(subject, n)
ORDER BY n
ON CONFLICT (merchant_id, livemode, subject) DO UPDATE
SET attempts = s.attempts + 1,
    amount_in_usd = s.amount_in_usd + EXCLUDED.amount_in_usd,
    last_at = greatest(s.last_at, EXCLUDED.last_at)
RETURNING subject, attempts, charges, declines, amount_in_usd
"""
# The attempt's events and card recorded, old events pruned, and each subject's windows read, in
# one statement. Its reads see the table as it was before its own writes (one snapshot), so
# the attempt's own event and card are added to what they find rather than found:
# $3 attempt id, $4 its time, $5 its amount in USD, $6 its subjects, $7 those that count its
# card $8; $9, $10, $11 the starts of the last hour, day and week, each open (an event at the
# start is out); events at or before $12 are pruned, at most $13 a time, skipping any an
# outcome holds.
_RECORD_VELOCITY_EVENT = """
WITH recorded AS (
    INSERT INTO risk_velocity_events (merchant_id, livemode, subject, attempt_id, at, amount_in_usd, outcome)
    SELECT $1, $2, subject, $3, $4, $5, 'pending' FROM unnest($6::text[]) AS t(subject)
    ON CONFLICT DO NOTHING
), pruned AS (
    DELETE FROM risk_velocity_events
    WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM risk_velocity_events
        WHERE merchant_id = $1 AND livemode = $2 AND subject = ANY($6::text[]) AND at <= $12
        LIMIT $13
        FOR UPDATE SKIP LOCKED
    ))
), cards AS (
    INSERT INTO risk_velocity_cards AS c (merchant_id, livemode, subject, card_fingerprint, last_at)
    SELECT $1, $2, subject, $8, $4 FROM unnest($7::text[]) AS t(subject)
    ON CONFLICT (merchant_id, livemode, subject, card_fingerprint) DO UPDATE SET last_at = greatest(c.last_at, EXCLUDED.last_at)
    -- xmax is 0 on a row this statement inserted, not on one it updated.
    RETURNING subject, xmax = 0 AS inserted
), events AS (
    SELECT subject,
           count(*) FILTER (WHERE at > $9) AS attempts_hourly,
           count(*) FILTER (WHERE at > $10) AS attempts_daily,
           count(*) AS attempts_weekly,
           count(*) FILTER (WHERE at > $9 AND outcome = 'succeeded') AS charges_hourly,
           count(*) FILTER (WHERE at > $10 AND outcome = 'succeeded') AS charges_daily,
           count(*) FILTER (WHERE outcome = 'succeeded') AS charges_weekly,
           count(*) FILTER (WHERE at > $9 AND outcome = 'declined') AS declines_hourly,
           count(*) FILTER (WHERE at > $10 AND outcome = 'declined') AS declines_daily,
           count(*) FILTER (WHERE outcome = 'declined') AS declines_weekly,
           coalesce(sum(amount_in_usd) FILTER (WHERE at > $9), 0) AS amount_in_usd_hourly,
           coalesce(sum(amount_in_usd) FILTER (WHERE at > $10), 0) AS amount_in_usd_daily,
           coalesce(sum(amount_in_usd), 0) AS amount_in_usd_weekly
    FROM risk_velocity_events
    WHERE merchant_id = $1 AND livemode = $2 AND subject = ANY($6::text[]) AND at > $11 AND attempt_id <> $3
    GROUP BY subject
), other_cards AS (
    SELECT subject,
           count(*) FILTER (WHERE last_at > $9) AS cards_hourly,
           count(*) FILTER (WHERE last_at > $10) AS cards_daily,
           count(*) FILTER (WHERE last_at > $11) AS cards_weekly,
           count(*) AS cards_all_time
    FROM risk_velocity_cards
    WHERE merchant_id = $1 AND livemode = $2 AND subject = ANY($7::text[]) AND card_fingerprint <> $8
    GROUP BY subject
)
SELECT t.subject,
       coalesce(e.attempts_hourly, 0) + 1 AS attempts_hourly,
       coalesce(e.attempts_daily, 0) + 1 AS attempts_daily,
       coalesce(e.attempts_weekly, 0) + 1 AS attempts_weekly,
       coalesce(e.charges_hourly, 0) AS charges_hourly,
       coalesce(e.charges_daily, 0) AS charges_daily,
       coalesce(e.charges_weekly, 0) AS charges_weekly,
       coalesce(e.declines_hourly, 0) AS declines_hourly,
       coalesce(e.declines_daily, 0) AS declines_daily,
       coalesce(e.declines_weekly, 0) AS declines_weekly,
       coalesce(e.amount_in_usd_hourly, 0) + coalesce($5, 0) AS amount_in_usd_hourly,
       coalesce(e.amount_in_usd_daily, 0) + coalesce($5, 0) AS amount_in_usd_daily,
       coalesce(e.amount_in_usd_weekly, 0) + coalesce($5, 0) AS amount_in_usd_weekly,
       -- The attempt's own card, in every window of the subjects that count it.
       coalesce(c.cards_hourly, 0) + own.card AS cards_hourly,
       coalesce(c.cards_daily, 0) + own.card AS cards_daily,
       coalesce(c.cards_weekly, 0) + own.card AS cards_weekly,
       coalesce(c.cards_all_time, 0) + own.card AS cards_all_time,
       coalesce((SELECT inserted FROM cards WHERE cards.subject = t.subject), false) AS card_first_seen
FROM unnest($6::text[]) AS t(subject)
CROSS JOIN LATERAL (SELECT (t.subject = ANY($7::text[]))::int AS card) AS own
LEFT JOIN events e USING (subject)
LEFT JOIN other_cards c USING (subject)
"""
# The subjects' rows are taken in the order of their names, as assessments take them: two
# outcomes of attempts that share subjects (an address, a card) cannot each hold what the other waits for.
_RECORD_VELOCITY_OUTCOME = """
WITH changed AS (
    UPDATE risk_velocity_events SET outcome = $4
    WHERE merchant_id = $1 AND livemode = $2 AND attempt_id = $3 AND outcome = 'pending'
    RETURNING subject
), locked AS (
    SELECT s.subject FROM risk_velocity_subjects s
    WHERE s.merchant_id = $1 AND s.livemode = $2 AND s.subject IN (SELECT subject FROM changed)
    ORDER BY s.subject
    FOR UPDATE
)
UPDATE risk_velocity_subjects s
SET charges = s.charges + (CASE WHEN $4 = 'succeeded' THEN 1 ELSE 0 END),
    declines = s.declines + (CASE WHEN $4 = 'declined' THEN 1 ELSE 0 END)
FROM locked
WHERE s.merchant_id = $1 AND s.livemode = $2 AND s.subject = locked.subject
"""


async def count_subjects(
    connection: Connection, tenant: Tenant, subjects: list[str], amount_in_usd: Decimal | None, at: datetime
) -> dict[str, AnyRow]:
    """Each subject's all-time counts with this attempt, its row locked until commit."""
    rows = await connection.fetch(_COUNT_SUBJECTS, tenant.merchant_id, tenant.livemode, at, amount_in_usd, subjects)
    return {row["subject"]: row for row in rows}


async def record_velocity_event(
    connection: Connection,
    tenant: Tenant,
    *,
    subjects: list[str],
    attempt_id: str,
    at: datetime,
    amount_in_usd: Decimal | None,
    card_subjects: list[str],
    card_fingerprint: str | None,
    window_starts: dict[str, datetime],
    pruned_before: datetime,
    pruned_max: int,
) -> dict[str, AnyRow]:
    """The attempt's event for each subject and its card seen with `card_subjects`; each
    subject's windows with the attempt, and `card_first_seen` where the card was new to it."""
    rows = await connection.fetch(
        _RECORD_VELOCITY_EVENT,
        tenant.merchant_id,
        tenant.livemode,
        attempt_id,
        at,
        amount_in_usd,
        subjects,
        card_subjects,
        card_fingerprint,
        window_starts["hourly"],
        window_starts["daily"],
        window_starts["weekly"],
        pruned_before,
        pruned_max,
    )
    return {row["subject"]: row for row in rows}


async def record_velocity_outcome(connection: Connection, tenant: Tenant, attempt_id: str, outcome: str) -> None:
    await connection.execute(_RECORD_VELOCITY_OUTCOME, tenant.merchant_id, tenant.livemode, attempt_id, outcome)


# Assessments (assessment.py).

# What an assessment starts from, in one round trip: a decision already made for the attempt,
# the merchant's settings, its live and shadow rulesets, and the currency's rate to USD.
_ASSESSMENT_CONTEXT = """
SELECT
    (SELECT to_jsonb(d) FROM risk_decisions d WHERE d.merchant_id = $1 AND d.livemode = $2 AND d.attempt_id = $3)
        AS decision,
    (SELECT jsonb_build_object('budget_ms', s.budget_ms, 'failure_policy', s.failure_policy)
     FROM risk_settings s WHERE s.merchant_id = $1 AND s.livemode = $2) AS settings,
    (SELECT jsonb_agg(jsonb_build_object('id', r.id, 'status', r.status, 'rules', r.rules))
     FROM risk_rulesets r WHERE r.merchant_id = $1 AND r.livemode = $2 AND r.status IN ('live', 'shadow')) AS rulesets,
    (SELECT usd_per_unit::text FROM risk_usd_rates WHERE currency = $4) AS usd_per_unit,
    (SELECT country FROM risk_iin_ranges WHERE $5::bigint BETWEEN low AND high ORDER BY high - low LIMIT 1) AS card_country
"""
# Which of the asked (alias, value) pairs a list holds: the value itself, or for a list of IP
# addresses and ranges, a range that holds the address.
_LIST_MATCHES = """
SELECT a.alias, a.value FROM unnest($3::text[], $4::text[]) AS a(alias, value)
WHERE EXISTS (
    SELECT 1 FROM risk_lists l JOIN risk_list_items i ON i.list_id = l.id
    WHERE l.merchant_id = $1 AND l.livemode = $2 AND l.alias = a.alias
      AND CASE WHEN l.item_type = 'ip' THEN i.value::inet >>= a.value::inet ELSE i.value = a.value END
)
"""
_INSERT_DECISION = """
INSERT INTO risk_decisions (id, merchant_id, livemode, attempt_id, payment_intent_id, action, risk_score, risk_level,
                            rule_id, reasons, ruleset_id, shadow, model_version, model, attributes, duration_ms, created_at)
VALUES ($3, $1, $2, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
ON CONFLICT (attempt_id) DO NOTHING
RETURNING *
"""
_DECISION = "SELECT * FROM risk_decisions WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_DECISION_FOR_ATTEMPT = "SELECT * FROM risk_decisions WHERE merchant_id = $1 AND livemode = $2 AND attempt_id = $3"


async def assessment_context(connection: Connection, tenant: Tenant, attempt_id: str, currency: str, iin: int | None) -> AnyRow:
    """`iin`: the card's BIN as an 8-digit number (424242 is 42424200), for its country."""
    row: AnyRow = await connection.fetchrow(_ASSESSMENT_CONTEXT, tenant.merchant_id, tenant.livemode, attempt_id, currency, iin)
    return row


async def list_matches(connection: Connection, tenant: Tenant, asked: list[tuple[str, str]]) -> set[tuple[str, str]]:
    rows = await connection.fetch(
        _LIST_MATCHES, tenant.merchant_id, tenant.livemode, [alias for alias, _ in asked], [value for _, value in asked]
    )
    return {(row["alias"], row["value"]) for row in rows}


async def insert_decision(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> AnyRow | None:
    """The decision, or None when the attempt has one already."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_DECISION,
        tenant.merchant_id,
        tenant.livemode,
        values["id"],
        values["attempt_id"],
        values["payment_intent_id"],
        values["action"],
        values["risk_score"],
        values["risk_level"],
        values["rule_id"],
        values["reasons"],
        values["ruleset_id"],
        values["shadow"],
        values["model_version"],
        values["model"],
        values["attributes"],
        values["duration_ms"],
        values["created_at"],
    )
    return row


async def get_decision(connection: Connection, tenant: Tenant, decision_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_DECISION, tenant.merchant_id, tenant.livemode, decision_id)
    return row


async def decision_for_attempt(connection: Connection, tenant: Tenant, attempt_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_DECISION_FOR_ATTEMPT, tenant.merchant_id, tenant.livemode, attempt_id)
    return row


# Settings.

_SETTINGS = "SELECT * FROM risk_settings WHERE merchant_id = $1 AND livemode = $2"
_UPSERT_SETTINGS = """
INSERT INTO risk_settings (merchant_id, livemode, budget_ms, failure_policy, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (merchant_id, livemode) DO UPDATE
SET budget_ms = EXCLUDED.budget_ms, failure_policy = EXCLUDED.failure_policy, updated_at = EXCLUDED.updated_at
RETURNING *
"""


async def get_settings(connection: Connection, tenant: Tenant) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_SETTINGS, tenant.merchant_id, tenant.livemode)
    return row


async def upsert_settings(connection: Connection, tenant: Tenant, budget_ms: int, failure_policy: str, at: datetime) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_UPSERT_SETTINGS, tenant.merchant_id, tenant.livemode, budget_ms, failure_policy, at)
    return row


# Exchange rates: platform-wide, loaded by `bastion risk rates load`.

_UPSERT_RATE = """
INSERT INTO risk_usd_rates (currency, usd_per_unit, as_of) VALUES ($1, $2, $3)
ON CONFLICT (currency) DO UPDATE SET usd_per_unit = EXCLUDED.usd_per_unit, as_of = EXCLUDED.as_of
"""


async def upsert_rates(connection: Connection, rates: list[tuple[str, Decimal]], as_of: datetime) -> None:
    await connection.executemany(_UPSERT_RATE, [(currency, rate, as_of) for currency, rate in rates])


# Replays, as the owner: by id, whatever the merchant.

_DECISION_ANY_TENANT = "SELECT * FROM risk_decisions WHERE id = $1"
_RULESETS_ANY_TENANT = "SELECT id, rules FROM risk_rulesets WHERE id = ANY($1::text[])"


async def decision_any_tenant(connection: Connection, decision_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_DECISION_ANY_TENANT, decision_id)
    return row


async def rulesets_any_tenant(connection: Connection, ruleset_ids: list[str]) -> dict[str, AnyRow]:
    return {row["id"]: row for row in await connection.fetch(_RULESETS_ANY_TENANT, ruleset_ids)}


# Backtests, as the owner: a merchant's decisions in one mode since a moment, a page at a time.

_DECISIONS_SINCE = """
SELECT id, attempt_id, action, risk_level, attributes, shadow FROM risk_decisions
WHERE merchant_id = $1 AND livemode = $2 AND created_at >= $3 AND id > $4
ORDER BY id LIMIT $5
"""


async def decisions_since(connection: Connection, tenant: Tenant, since: datetime, *, after_id: str, limit: int) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_DECISIONS_SINCE, tenant.merchant_id, tenant.livemode, since, after_id, limit)
    return rows


# Locations (travel.py): where each subject was last located, taken over by this attempt.

_MOVE_SUBJECTS = """
WITH previous AS (
    SELECT subject, latitude, longitude, accuracy_km, at FROM risk_locations
    WHERE merchant_id = $1 AND livemode = $2 AND subject = ANY($3::text[])
), moved AS (
    INSERT INTO risk_locations AS l (merchant_id, livemode, subject, latitude, longitude, accuracy_km, at)
    SELECT $1, $2, subject, $4, $5, $6, $7 FROM unnest($3::text[]) AS t(subject)
    ON CONFLICT (merchant_id, livemode, subject) DO UPDATE
    SET latitude = EXCLUDED.latitude, longitude = EXCLUDED.longitude, accuracy_km = EXCLUDED.accuracy_km, at = EXCLUDED.at
    WHERE l.at <= EXCLUDED.at
    RETURNING 1
)
SELECT previous.* FROM previous, (SELECT count(*) FROM moved) AS written
"""


async def move_subjects(
    connection: Connection,
    tenant: Tenant,
    subjects: list[str],
    *,
    latitude: Decimal,
    longitude: Decimal,
    accuracy_km: int,
    at: datetime,
) -> list[AnyRow]:
    """Where the subjects were last located (those that were), now placed here."""
    rows: list[AnyRow] = await connection.fetch(
        _MOVE_SUBJECTS, tenant.merchant_id, tenant.livemode, subjects, latitude, longitude, accuracy_km, at
    )
    return rows


# IIN ranges (iin.py), replaced whole by each load.
_CARD_COUNTRY = "SELECT country FROM risk_iin_ranges WHERE $1::bigint BETWEEN low AND high ORDER BY high - low LIMIT 1"

_DELETE_IIN_RANGES = "DELETE FROM risk_iin_ranges"
_INSERT_IIN_RANGES = """
INSERT INTO risk_iin_ranges (low, high, country) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])
"""


async def replace_iin_ranges(connection: Connection, ranges: list[tuple[int, int, str]]) -> None:
    await connection.execute(_DELETE_IIN_RANGES)
    await connection.execute(
        _INSERT_IIN_RANGES, [low for low, _, _ in ranges], [high for _, high, _ in ranges], [country for _, _, country in ranges]
    )


async def card_country(connection: Connection, iin: int) -> str | None:
    """The issuing country of the narrowest loaded range holding `iin` (an 8-digit BIN)."""
    country: str | None = await connection.fetchval(_CARD_COUNTRY, iin)
    return country
