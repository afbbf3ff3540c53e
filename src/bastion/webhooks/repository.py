"""All SQL of the webhooks context."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

_INSERT_ENDPOINT = """
INSERT INTO webhook_endpoints (id, merchant_id, livemode, url, enabled_events, description, metadata, ordered, disabled,
                               secret_sealed, created_at, updated_at, signature_scheme)
VALUES ($3, $1, $2, $4, $5, $6, $7, $8, false, $9, $10, $10, $11)
RETURNING *
"""
_GET_ENDPOINT = "SELECT * FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND deleted_at IS NULL"
_GET_ENDPOINT_FOR_UPDATE = f"{_GET_ENDPOINT} FOR UPDATE"
_UPDATE_ENDPOINT = """
UPDATE webhook_endpoints
SET url = $4, enabled_events = $5, description = $6, metadata = $7, ordered = $8, disabled = $9, updated_at = $10,
    signature_scheme = $11,
    -- Enabled again by its merchant: the reason goes, and a new failing spell would start from scratch.
    disabled_reason = CASE WHEN $9 THEN disabled_reason END, failing_since = CASE WHEN $9 THEN failing_since END
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_ROTATE = """
UPDATE webhook_endpoints
SET secret_sealed = $4, previous_secret_sealed = $5, previous_secret_expires_at = $6, updated_at = $7
WHERE merchant_id = $1 AND livemode = $2 AND id = $3
RETURNING *
"""
_DELETE_ENDPOINT = """
UPDATE webhook_endpoints SET deleted_at = $4, updated_at = $4 WHERE merchant_id = $1 AND livemode = $2 AND id = $3
"""
# Held to the transaction's end by a creation: two concurrent ones cannot both pass the limit.
_LOCK_ENDPOINTS = "SELECT pg_advisory_xact_lock(hashtextextended('webhook_endpoints:' || $1 || ':' || $2::boolean::text, 0))"
_COUNT_ENDPOINTS = "SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND deleted_at IS NULL"
_ENDPOINT_EXISTS = (
    "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND id = $3 AND deleted_at IS NULL)"
)
# Paged by fetch_page.
_ENDPOINTS = "SELECT * FROM webhook_endpoints WHERE merchant_id = $1 AND livemode = $2 AND deleted_at IS NULL"


async def insert_endpoint(
    connection: Connection,
    tenant: Tenant,
    *,
    endpoint_id: str,
    url: str,
    enabled_events: list[str],
    description: str | None,
    metadata: dict[str, str],
    ordered: bool,
    signature_scheme: str,
    secret_sealed: bytes,
    created_at: datetime,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_ENDPOINT,
        tenant.merchant_id,
        tenant.livemode,
        endpoint_id,
        url,
        enabled_events,
        description,
        metadata,
        ordered,
        secret_sealed,
        created_at,
        signature_scheme,
    )
    return row


async def get_endpoint(connection: Connection, tenant: Tenant, endpoint_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = _GET_ENDPOINT_FOR_UPDATE if for_update else _GET_ENDPOINT
    row: AnyRow | None = await connection.fetchrow(query, tenant.merchant_id, tenant.livemode, endpoint_id)
    return row


async def update_endpoint(connection: Connection, tenant: Tenant, endpoint_id: str, fields: dict[str, Any]) -> AnyRow:
    """Write every editable field: the caller holds the row and passes the current value of each
    field it does not change."""
    row: AnyRow = await connection.fetchrow(
        _UPDATE_ENDPOINT,
        tenant.merchant_id,
        tenant.livemode,
        endpoint_id,
        fields["url"],
        fields["enabled_events"],
        fields["description"],
        fields["metadata"],
        fields["ordered"],
        fields["disabled"],
        fields["updated_at"],
        fields["signature_scheme"],
    )
    return row


async def rotate_secret(
    connection: Connection,
    tenant: Tenant,
    endpoint_id: str,
    *,
    secret_sealed: bytes,
    previous_secret_sealed: bytes,
    previous_secret_expires_at: datetime,
    updated_at: datetime,
) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _ROTATE,
        tenant.merchant_id,
        tenant.livemode,
        endpoint_id,
        secret_sealed,
        previous_secret_sealed,
        previous_secret_expires_at,
        updated_at,
    )
    return row


async def delete_endpoint(connection: Connection, tenant: Tenant, endpoint_id: str, deleted_at: datetime) -> None:
    await connection.execute(_DELETE_ENDPOINT, tenant.merchant_id, tenant.livemode, endpoint_id, deleted_at)


async def count_endpoints(connection: Connection, tenant: Tenant) -> int:
    """The merchant's endpoints in this mode, its creations locked out until this transaction ends."""
    await connection.execute(_LOCK_ENDPOINTS, tenant.merchant_id, tenant.livemode)
    count: int = await connection.fetchval(_COUNT_ENDPOINTS, tenant.merchant_id, tenant.livemode)
    return count


async def endpoint_exists(connection: Connection, tenant: Tenant, endpoint_id: str) -> bool:
    return bool(await connection.fetchval(_ENDPOINT_EXISTS, tenant.merchant_id, tenant.livemode, endpoint_id))


async def page_endpoints(connection: Connection, tenant: Tenant, request: PageRequest) -> Page:
    return await fetch_page(connection, _ENDPOINTS, (tenant.merchant_id, tenant.livemode), request)


# --- Deliveries: the fan-out and the sender run as the worker, across tenants. ---

# The endpoints of the event's merchant and mode that take new deliveries, and the tenant itself.
_FANOUT_ENDPOINTS = """
SELECT e.id AS event_id, e.merchant_id, w.id, w.enabled_events
FROM events AS e
JOIN webhook_endpoints AS w ON w.merchant_id = e.merchant_id AND w.livemode = e.livemode
WHERE e.id = ANY($1::text[]) AND NOT w.disabled AND w.deleted_at IS NULL
ORDER BY e.id, w.id
"""
_INSERT_DELIVERIES = """
INSERT INTO webhook_deliveries (id, merchant_id, livemode, endpoint_id, event_id, event_type, object_id, status, attempts,
                                next_attempt_at, created_at, updated_at)
SELECT d.*, 'pending', 0, $8, $8, $8
FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[], $6::text[], $7::text[])
     AS d(id, merchant_id, livemode, endpoint_id, event_id, event_type, object_id)
ON CONFLICT (endpoint_id, event_id) DO NOTHING
"""
_DELIVERY_VALUES = ("id", "merchant_id", "livemode", "endpoint_id", "event_id", "event_type", "object_id")
# Round robin over the endpoints, from the one after `$7` (the last one served), each giving up to
# its free slots (`$4` less its deliveries in flight in this process) of its due deliveries,
# soonest first; an ordered endpoint's delivery waits while an earlier one about its object is
# pending. The claim pushes `next_attempt_at` to `$6`, past the attempt's end: if this process
# dies, the delivery is due again then.
_CLAIM_DUE = """
WITH due AS (
    SELECT d.id
    FROM (
        SELECT id, ordered FROM webhook_endpoints
        WHERE NOT disabled AND deleted_at IS NULL
        ORDER BY id <= $7, id
    ) AS w
    LEFT JOIN unnest($2::text[], $3::int[]) AS busy(endpoint_id, in_flight) ON busy.endpoint_id = w.id
    CROSS JOIN LATERAL (
        SELECT d.id FROM webhook_deliveries AS d
        WHERE d.endpoint_id = w.id AND d.status = 'pending' AND d.next_attempt_at <= $1
          AND NOT (w.ordered AND d.object_id IS NOT NULL AND EXISTS (
              SELECT 1 FROM webhook_deliveries AS p
              WHERE p.endpoint_id = d.endpoint_id AND p.object_id = d.object_id AND p.status = 'pending'
                AND p.event_id < d.event_id
          ))
        ORDER BY d.next_attempt_at
        LIMIT greatest($4 - coalesce(busy.in_flight, 0), 0)
        FOR UPDATE OF d SKIP LOCKED
    ) AS d
    LIMIT $5
)
UPDATE webhook_deliveries AS d SET next_attempt_at = $6
FROM due, events AS e, webhook_endpoints AS w
WHERE d.id = due.id AND e.id = d.event_id AND w.id = d.endpoint_id
RETURNING d.id, d.merchant_id, d.livemode, d.endpoint_id, d.event_id, d.attempts, d.created_at,
          e.type, e.data, e.request_id, e.created_at AS event_created_at,
          w.url, w.signature_scheme, w.secret_sealed, w.previous_secret_sealed, w.previous_secret_expires_at, w.failing_since
"""
# One statement for a batch of attempts, whatever their merchants: each delivery as its attempt
# left it, the attempt's row, and its endpoint's failing spell (a success ends it, a failure
# starts one unless it is already failing). Answers the deliveries as updated.
_RECORD_ATTEMPTS = """
WITH outcome AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int[], $6::text[], $7::text[],
                         $8::text[], $9::int[], $10::boolean[])
        AS r(id, status, next_attempt_at, attempted_at, status_code, error, response_body, attempt_id, duration_ms, succeeded)
), delivery AS (
    UPDATE webhook_deliveries AS d
    SET status = r.status, attempts = d.attempts + 1, next_attempt_at = r.next_attempt_at, last_attempt_at = r.attempted_at,
        last_status_code = r.status_code, last_error = r.error, last_response_body = r.response_body,
        updated_at = r.attempted_at
    FROM outcome AS r
    WHERE d.id = r.id
    RETURNING d.*
), attempt AS (
    INSERT INTO webhook_attempts (id, merchant_id, livemode, delivery_id, attempted_at, duration_ms, status_code, error,
                                  response_body, succeeded)
    SELECT r.attempt_id, d.merchant_id, d.livemode, r.id, r.attempted_at, r.duration_ms, r.status_code, r.error,
           r.response_body, r.succeeded
    FROM outcome AS r JOIN delivery AS d ON d.id = r.id
), spell AS (
    SELECT d.endpoint_id, bool_or(r.succeeded) AS succeeded, min(r.attempted_at) AS failed_at
    FROM outcome AS r JOIN delivery AS d ON d.id = r.id
    GROUP BY d.endpoint_id
), failing AS (
    UPDATE webhook_endpoints AS w
    SET failing_since = CASE WHEN s.succeeded THEN NULL ELSE coalesce(w.failing_since, s.failed_at) END
    FROM spell AS s
    WHERE w.id = s.endpoint_id AND (w.failing_since IS NULL) = NOT s.succeeded
)
SELECT * FROM delivery
"""
_OUTCOME_VALUES = (
    "id",
    "status",
    "next_attempt_at",
    "attempted_at",
    "status_code",
    "error",
    "response_body",
    "attempt_id",
    "duration_ms",
    "succeeded",
)
_DISABLE_ENDPOINT = """
UPDATE webhook_endpoints SET disabled = true, disabled_reason = $3, updated_at = $4
WHERE id = $1 AND merchant_id = $2 AND NOT disabled
RETURNING *
"""
# Paged by fetch_page; $4 is a status, or NULL for every status.
_DELIVERIES = """
SELECT * FROM webhook_deliveries
WHERE merchant_id = $1 AND livemode = $2 AND endpoint_id = $3 AND ($4::text IS NULL OR status = $4)
"""
_GET_DELIVERY = "SELECT * FROM webhook_deliveries WHERE merchant_id = $1 AND livemode = $2 AND endpoint_id = $3 AND id = $4"
_DELIVERY_EXISTS = f"SELECT EXISTS ({_GET_DELIVERY})"
_ATTEMPTS = "SELECT * FROM webhook_attempts WHERE merchant_id = $1 AND livemode = $2 AND delivery_id = $3"
_ATTEMPT_EXISTS = "SELECT EXISTS (SELECT 1 FROM webhook_attempts WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
# A retry asked for by the merchant: due now, whatever its status; the schedule goes on from its
# attempts so far (a dead letter that fails again is dead-lettered again).
_REQUEUE_DELIVERY = """
UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $5, updated_at = $5
WHERE merchant_id = $1 AND livemode = $2 AND endpoint_id = $3 AND id = $4
RETURNING *
"""
_REQUEUE_FAILED = """
UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $5, updated_at = $5
WHERE merchant_id = $1 AND livemode = $2 AND endpoint_id = $3 AND status = 'failed' AND created_at >= $4
"""
_MARK_RECOVERED = "UPDATE webhook_endpoints SET recovered_at = $4 WHERE merchant_id = $1 AND livemode = $2 AND id = $3"


async def fanout_endpoints(connection: Connection, event_ids: list[str]) -> list[AnyRow]:
    """For each of the events, the endpoints of its merchant and mode that take new deliveries."""
    rows: list[AnyRow] = await connection.fetch(_FANOUT_ENDPOINTS, event_ids)
    return rows


async def insert_deliveries(connection: Connection, deliveries: Sequence[dict[str, Any]], created_at: datetime) -> None:
    """New deliveries (keys as `_DELIVERY_VALUES` names them), due at `created_at`."""
    await connection.execute(
        _INSERT_DELIVERIES, *([delivery[name] for delivery in deliveries] for name in _DELIVERY_VALUES), created_at
    )


async def claim_due(
    connection: Connection,
    *,
    now: datetime,
    in_flight: dict[str, int],
    per_endpoint_max: int,
    limit: int,
    lease_until: datetime,
    after_endpoint_id: str,
) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(
        _CLAIM_DUE,
        now,
        list(in_flight),
        list(in_flight.values()),
        per_endpoint_max,
        limit,
        lease_until,
        after_endpoint_id,
    )
    return rows


async def record_attempts(connection: Connection, outcomes: Sequence[dict[str, Any]]) -> list[AnyRow]:
    """Record each outcome (keys as `_OUTCOME_VALUES` names them) in one statement; the deliveries after it."""
    rows: list[AnyRow] = await connection.fetch(
        _RECORD_ATTEMPTS, *([outcome[name] for outcome in outcomes] for name in _OUTCOME_VALUES)
    )
    return rows


async def disable_endpoint(connection: Connection, tenant: Tenant, endpoint_id: str, reason: str, now: datetime) -> AnyRow | None:
    """The endpoint, disabled for `reason`; None if it already was."""
    row: AnyRow | None = await connection.fetchrow(_DISABLE_ENDPOINT, endpoint_id, tenant.merchant_id, reason, now)
    return row


async def page_deliveries(
    connection: Connection, tenant: Tenant, endpoint_id: str, status: str | None, request: PageRequest
) -> Page:
    return await fetch_page(connection, _DELIVERIES, (tenant.merchant_id, tenant.livemode, endpoint_id, status), request)


async def get_delivery(connection: Connection, tenant: Tenant, endpoint_id: str, delivery_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_GET_DELIVERY, tenant.merchant_id, tenant.livemode, endpoint_id, delivery_id)
    return row


async def delivery_exists(connection: Connection, tenant: Tenant, endpoint_id: str, delivery_id: str) -> bool:
    return bool(await connection.fetchval(_DELIVERY_EXISTS, tenant.merchant_id, tenant.livemode, endpoint_id, delivery_id))


async def page_attempts(connection: Connection, tenant: Tenant, delivery_id: str, request: PageRequest) -> Page:
    return await fetch_page(connection, _ATTEMPTS, (tenant.merchant_id, tenant.livemode, delivery_id), request)


async def attempt_exists(connection: Connection, tenant: Tenant, attempt_id: str) -> bool:
    return bool(await connection.fetchval(_ATTEMPT_EXISTS, tenant.merchant_id, tenant.livemode, attempt_id))


async def requeue_delivery(
    connection: Connection, tenant: Tenant, endpoint_id: str, delivery_id: str, now: datetime
) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(
        _REQUEUE_DELIVERY, tenant.merchant_id, tenant.livemode, endpoint_id, delivery_id, now
    )
    return row


async def requeue_failed(connection: Connection, tenant: Tenant, endpoint_id: str, since: datetime, now: datetime) -> int:
    """Every dead letter of the endpoint created since `since`, due now; how many."""
    status = await connection.execute(_REQUEUE_FAILED, tenant.merchant_id, tenant.livemode, endpoint_id, since, now)
    await connection.execute(_MARK_RECOVERED, tenant.merchant_id, tenant.livemode, endpoint_id, now)
    return int(status.split()[-1])
