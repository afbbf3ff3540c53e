"""All SQL of the risk context's machine learning: the labelled history, its imports, the model
registry and the drift of each model's features (docs/risk-ml.md)."""

from collections.abc import AsyncIterable, Sequence
from datetime import date, datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant

# History imports: a file of millions of rows takes longer than the pool's statement timeout.
IMPORT_STATEMENT_TIMEOUT_S = 1_800.0

_STAGING = "risk_import_rows"
_STAGING_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "tx_amount",
    "tx_time_seconds",  # redundant with TX_DATETIME: not read
    "tx_time_days",
    "tx_fraud",
    "tx_fraud_scenario",
)
# The staged file and the sort by customer held in memory, not spilled to disk. temp_buffers can
# change only before the session's first temporary table: a CLI command's own new connection.
_IMPORT_MEMORY = "SET LOCAL temp_buffers = '512MB'; SET LOCAL work_mem = '256MB'"
# Line 1 is the header.
_CREATE_STAGING = f"""
CREATE TEMPORARY TABLE {_STAGING} (line bigint GENERATED ALWAYS AS IDENTITY (START WITH 2),
{", ".join(f"{name} text" for name in _STAGING_COLUMNS)}) ON COMMIT DROP
"""
_DATETIME = r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[ T]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,6})?$"
# Only where the import failed: which lines, and what in them.
_BAD_LINES = rf"""
SELECT line, bad AS column FROM (
    SELECT line, CASE
        WHEN transaction_id IS NULL OR length(transaction_id) NOT BETWEEN 1 AND 200 THEN 'TRANSACTION_ID'
        WHEN tx_datetime IS NULL OR tx_datetime !~ '{_DATETIME}' THEN 'TX_DATETIME'
        WHEN customer_id IS NULL OR length(customer_id) NOT BETWEEN 1 AND 200 THEN 'CUSTOMER_ID'
        WHEN terminal_id IS NULL OR length(terminal_id) NOT BETWEEN 1 AND 200 THEN 'TERMINAL_ID'
        WHEN tx_amount IS NULL OR tx_amount !~ '^\d{{1,16}}(\.\d{{1,20}})?$' THEN 'TX_AMOUNT'
        WHEN tx_fraud IS NULL OR tx_fraud NOT IN ('0', '1') THEN 'TX_FRAUD'
        WHEN tx_fraud_scenario !~ '^\d{{1,4}}$' THEN 'TX_FRAUD_SCENARIO'
    END AS bad FROM {_STAGING}
) checked WHERE bad IS NOT NULL ORDER BY line LIMIT $1
"""
_IMPORT_DAYS = f"SELECT DISTINCT substr(tx_datetime, 1, 10) AS day FROM {_STAGING}"
_LINES_ON_DAYS = f"""
SELECT line, 'TX_DATETIME' AS column FROM {_STAGING} WHERE substr(tx_datetime, 1, 10) = ANY($1::text[]) ORDER BY line LIMIT $2
"""
_IMPORT_OF_FILE = "SELECT id FROM risk_history_imports WHERE merchant_id = $1 AND livemode = $2 AND file_sha256 = $3"
_INSERT_IMPORT = """
INSERT INTO risk_history_imports (id, merchant_id, livemode, file_sha256, file_name, rows, frauds, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""
# Every value is checked by its cast (a time must start with a digit: PostgreSQL also reads
# 'now'), a CHECK or NOT NULL, so that a good file is read once and no regular expression runs
# on each row; rows go in by customer, which keeps that index's inserts in order.
_INSERT_IMPORTED_HISTORY = rf"""
INSERT INTO risk_history (merchant_id, livemode, source, transaction_id, occurred_at, customer_key, terminal_key, amount,
                          fraud, fraud_scenario, import_id)
SELECT $1, $2, 'import', transaction_id,
       CASE WHEN left(tx_datetime, 1) BETWEEN '0' AND '9' THEN tx_datetime::timestamp AT TIME ZONE 'UTC' END,
       customer_id, terminal_id, tx_amount::numeric(18, 2),
       CASE tx_fraud WHEN '1' THEN true WHEN '0' THEN false END, tx_fraud_scenario::smallint, $3
FROM {_STAGING} ORDER BY hashtextextended(customer_id, 0)
RETURNING occurred_at, fraud
"""
_IMPORTED_SUMMARY = f"""
WITH inserted AS ({_INSERT_IMPORTED_HISTORY})
SELECT count(*) AS rows, count(*) FILTER (WHERE fraud) AS frauds, min(occurred_at) AS first, max(occurred_at) AS last
FROM inserted
"""


async def create_import_staging(connection: Connection) -> None:
    await connection.execute(_IMPORT_MEMORY)
    await connection.execute(_CREATE_STAGING)


async def copy_import_staging(connection: Connection, header: Sequence[str], source: AsyncIterable[bytes]) -> None:
    """The file's bytes, header line first, into the staging table; `header` names its columns
    in order (each one of REQUIRED_COLUMNS and OPTIONAL_COLUMNS, checked by the caller)."""
    await connection.copy_to_table(
        _STAGING,
        source=source,
        columns=[name.lower() for name in header],
        format="csv",
        header=True,
        encoding="utf8",
        timeout=IMPORT_STATEMENT_TIMEOUT_S,
    )


async def bad_import_lines(connection: Connection, limit: int) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_BAD_LINES, limit, timeout=IMPORT_STATEMENT_TIMEOUT_S)
    return rows


async def import_days(connection: Connection) -> list[str]:
    return [row["day"] for row in await connection.fetch(_IMPORT_DAYS, timeout=IMPORT_STATEMENT_TIMEOUT_S)]


async def import_lines_on_days(connection: Connection, days: list[str], limit: int) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_LINES_ON_DAYS, days, limit, timeout=IMPORT_STATEMENT_TIMEOUT_S)
    return rows


async def import_of_file(connection: Connection, tenant: Tenant, sha256: str) -> str | None:
    found: str | None = await connection.fetchval(_IMPORT_OF_FILE, tenant.merchant_id, tenant.livemode, sha256)
    return found


async def insert_import(connection: Connection, tenant: Tenant, values: dict[str, Any]) -> None:
    await connection.execute(
        _INSERT_IMPORT,
        values["id"],
        tenant.merchant_id,
        tenant.livemode,
        values["file_sha256"],
        values["file_name"],
        values["rows"],
        values["frauds"],
        values["created_at"],
    )


async def insert_imported_history(connection: Connection, tenant: Tenant, import_id: str) -> AnyRow:
    """The staged rows into the history; their count, frauds and first and last times."""
    row: AnyRow = await connection.fetchrow(
        _IMPORTED_SUMMARY, tenant.merchant_id, tenant.livemode, import_id, timeout=IMPORT_STATEMENT_TIMEOUT_S
    )
    return row


# The history, read for features.

_FLOOR_SECONDS = "floor(extract(epoch FROM occurred_at))::bigint"
_HISTORY_BETWEEN = f"""
SELECT {_FLOOR_SECONDS} AS seconds, merchant_id || ':' || customer_key AS customer,
       merchant_id || ':' || terminal_key AS terminal, amount::float8 AS amount, fraud, signals
FROM risk_history
WHERE livemode = $1 AND occurred_at >= $2 AND occurred_at < $3 AND ($4::text IS NULL OR merchant_id = $4)
ORDER BY occurred_at, id
"""
# A decision's customer's and terminal's rows, the most recent first, each side bounded.
_ENTITY_HISTORY = f"""
(SELECT 'customer' AS side, {_FLOOR_SECONDS} AS seconds, amount::float8 AS amount, fraud FROM risk_history
 WHERE customer_hash = hashtextextended($3, 0) AND occurred_at >= $5 AND occurred_at < $6
   AND customer_key = $3 AND merchant_id = $1 AND livemode = $2
 ORDER BY occurred_at DESC LIMIT $8)
UNION ALL
(SELECT 'terminal', {_FLOOR_SECONDS}, amount::float8, fraud FROM risk_history
 WHERE terminal_hash = hashtextextended($4, 0) AND occurred_at >= $5 AND occurred_at < $7
   AND terminal_key = $4 AND merchant_id = $1 AND livemode = $2
 ORDER BY occurred_at DESC LIMIT $8)
"""
_INSERT_PAYMENT_HISTORY = """
INSERT INTO risk_history (merchant_id, livemode, source, transaction_id, occurred_at, customer_key, terminal_key, amount,
                          fraud, signals)
VALUES ($1, $2, 'payment', $3, $4, $5, $6, $7, false, $8)
ON CONFLICT (merchant_id, livemode, transaction_id) WHERE source = 'payment' DO NOTHING
"""
_LABEL_FRAUD = """
UPDATE risk_history SET fraud = true, labelled_at = $4
WHERE merchant_id = $1 AND livemode = $2 AND source = 'payment' AND transaction_id = $3 AND NOT fraud
"""


async def history_between(
    connection: Connection, *, livemode: bool, since: datetime, until: datetime, merchant_id: str | None
) -> list[AnyRow]:
    """Every row with `since` <= time < `until`, in time order; entity keys carry their merchant."""
    rows: list[AnyRow] = await connection.fetch(
        _HISTORY_BETWEEN, livemode, since, until, merchant_id, timeout=IMPORT_STATEMENT_TIMEOUT_S
    )
    return rows


async def entity_history(
    connection: Connection,
    tenant: Tenant,
    *,
    customer_key: str,
    terminal_key: str,
    since: datetime,
    customer_until: datetime,
    terminal_until: datetime,
    limit: int,
) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(
        _ENTITY_HISTORY,
        tenant.merchant_id,
        tenant.livemode,
        customer_key,
        terminal_key,
        since,
        customer_until,
        terminal_until,
        limit,
    )
    return rows


async def insert_payment_history(connection: Connection, tenant: Tenant, row: dict[str, Any]) -> None:
    await connection.execute(
        _INSERT_PAYMENT_HISTORY,
        tenant.merchant_id,
        tenant.livemode,
        row["transaction_id"],
        row["occurred_at"],
        row["customer_key"],
        row["terminal_key"],
        row["amount"],
        row["signals"],
    )


async def label_fraud(connection: Connection, tenant: Tenant, attempt_id: str, at: datetime) -> None:
    await connection.execute(_LABEL_FRAUD, tenant.merchant_id, tenant.livemode, attempt_id, at)


# The model registry.

_MODELS = "SELECT * FROM risk_models ORDER BY version"
_MODEL = "SELECT * FROM risk_models WHERE version = $1"
_SERVING_MODELS = "SELECT * FROM risk_models WHERE status IN ('champion', 'challenger')"
_INSERT_MODEL = """
INSERT INTO risk_models (version, status, file_name, sha256, trained_since, trained_until, delay_days, features, params,
                         metrics, reference, created_at)
SELECT coalesce(max(version), 0) + 1, 'candidate', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 FROM risk_models
RETURNING *
"""
_LOCK_MODELS = "LOCK TABLE risk_models IN SHARE ROW EXCLUSIVE MODE"
_SET_MODEL_STATUS = "UPDATE risk_models SET status = $2 WHERE version = $1 RETURNING *"
_CROWN = "UPDATE risk_models SET status = 'champion', championed_at = $2 WHERE version = $1 RETURNING *"
_MODEL_IN_STATUS = "SELECT * FROM risk_models WHERE status = $1"
_INSERT_PROMOTION = "INSERT INTO risk_model_promotions (version, replaced, promoted_at) VALUES ($1, $2, $3)"
_LATEST_PROMOTION = "SELECT * FROM risk_model_promotions WHERE rolled_back_at IS NULL ORDER BY id DESC LIMIT 1"
_ROLL_BACK_PROMOTION = "UPDATE risk_model_promotions SET rolled_back_at = $2 WHERE id = $1"


async def lock_models(connection: Connection) -> None:
    """Taken by every change of the registry: versions numbered without gaps, one champion at a time."""
    await connection.execute(_LOCK_MODELS)


async def models(connection: Connection) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_MODELS)
    return rows


async def model(connection: Connection, version: int) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_MODEL, version)
    return row


async def serving_models(connection: Connection) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_SERVING_MODELS)
    return rows


async def insert_model(connection: Connection, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = await connection.fetchrow(
        _INSERT_MODEL,
        values["file_name"],
        values["sha256"],
        values["trained_since"],
        values["trained_until"],
        values["delay_days"],
        values["features"],
        values["params"],
        values["metrics"],
        values["reference"],
        values["created_at"],
    )
    return row


async def set_model_status(connection: Connection, version: int, status: str) -> AnyRow:
    row: AnyRow = await connection.fetchrow(_SET_MODEL_STATUS, version, status)
    return row


async def crown(connection: Connection, version: int, replaced: int | None, at: datetime) -> AnyRow:
    """`version` becomes the champion, the promotion recorded with the champion it `replaced`."""
    await connection.execute(_INSERT_PROMOTION, version, replaced, at)
    row: AnyRow = await connection.fetchrow(_CROWN, version, at)
    return row


async def model_in_status(connection: Connection, status: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_MODEL_IN_STATUS, status)
    return row


async def latest_promotion(connection: Connection) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_LATEST_PROMOTION)
    return row


async def roll_back_promotion(connection: Connection, promotion_id: int, at: datetime) -> None:
    await connection.execute(_ROLL_BACK_PROMOTION, promotion_id, at)


# Drift.

_SCORED_FEATURES = """
SELECT model -> 'features' AS features FROM risk_decisions
WHERE model_version = $1 AND created_at >= $2 AND created_at < $3 AND model ? 'features'
LIMIT $4
"""
_UPSERT_DRIFT = """
INSERT INTO risk_model_drift (version, day, feature, psi, scored, computed_at)
SELECT $1, $2, feature, psi, $3, $4 FROM unnest($5::text[], $6::float8[]) AS drift (feature, psi)
ON CONFLICT (version, day, feature) DO UPDATE SET psi = EXCLUDED.psi, scored = EXCLUDED.scored, computed_at = EXCLUDED.computed_at
"""
_DRIFT = "SELECT * FROM risk_model_drift WHERE version = $1 ORDER BY day DESC, feature LIMIT $2"


async def scored_features(connection: Connection, version: int, since: datetime, until: datetime, limit: int) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_SCORED_FEATURES, str(version), since, until, limit)
    return rows


async def upsert_drift(
    connection: Connection, version: int, day: date, *, scored: int, psi: dict[str, float], at: datetime
) -> None:
    await connection.execute(_UPSERT_DRIFT, version, day, scored, at, list(psi), list(psi.values()))


async def drift(connection: Connection, version: int, limit: int) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_DRIFT, version, limit)
    return rows
