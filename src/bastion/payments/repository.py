"""All SQL of the payments context."""

from datetime import datetime
from typing import Any

from bastion.platform.db import AnyRow, Connection, Tenant
from bastion.platform.pagination import Page, PageRequest, fetch_page

_INSERT_PAYMENT_METHOD = """
INSERT INTO payment_methods (id, merchant_id, livemode, type, customer_id, card_brand, card_last4, card_exp_month,
                             card_exp_year, card_funding, card_fingerprint, vault_card_id, signals, metadata, created_at)
VALUES ($1, $2, $3, 'card', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT DO NOTHING
RETURNING *
"""
_GET_PAYMENT_METHOD = "SELECT * FROM payment_methods WHERE merchant_id = $1 AND livemode = $2 AND id = $3"
_PAYMENT_METHOD_EXISTS = "SELECT EXISTS (SELECT 1 FROM payment_methods WHERE merchant_id = $1 AND livemode = $2 AND id = $3)"
# Paged by fetch_page; a null $3 lists every payment method.
_PAYMENT_METHODS = (
    "SELECT * FROM payment_methods WHERE merchant_id = $1 AND livemode = $2 AND ($3::text IS NULL OR customer_id = $3)"
)


async def insert_payment_method(
    connection: Connection,
    tenant: Tenant,
    *,
    payment_method_id: str,
    customer_id: str | None,
    card: dict[str, Any],
    signals: dict[str, Any],
    metadata: dict[str, str],
    created_at: datetime,
) -> AnyRow | None:
    """A card payment method from the vault's metadata of the card (never the card itself);
    None when a concurrent exchange of the same token created it first."""
    row: AnyRow | None = await connection.fetchrow(
        _INSERT_PAYMENT_METHOD,
        payment_method_id,
        tenant.merchant_id,
        tenant.livemode,
        customer_id,
        card["brand"],
        card["last4"],
        card["exp_month"],
        card["exp_year"],
        card["funding"],
        card["fingerprint"],
        card["vault_card_id"],
        signals,
        metadata,
        created_at,
    )
    return row


async def get_payment_method(connection: Connection, tenant: Tenant, payment_method_id: str) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_GET_PAYMENT_METHOD, tenant.merchant_id, tenant.livemode, payment_method_id)
    return row


async def payment_method_exists(connection: Connection, tenant: Tenant, payment_method_id: str) -> bool:
    return bool(await connection.fetchval(_PAYMENT_METHOD_EXISTS, tenant.merchant_id, tenant.livemode, payment_method_id))


async def page_payment_methods(connection: Connection, tenant: Tenant, request: PageRequest, customer_id: str | None) -> Page:
    return await fetch_page(connection, _PAYMENT_METHODS, (tenant.merchant_id, tenant.livemode, customer_id), request)


# Written only for a merchant that exists: no row back means there is none.
_UPSERT_PRICING = """
INSERT INTO merchant_pricing (merchant_id, currency, basis_points, fixed_minor, updated_at)
SELECT id, $2, $3, $4, $5 FROM merchants WHERE id = $1
ON CONFLICT (merchant_id, currency) DO UPDATE
SET basis_points = EXCLUDED.basis_points, fixed_minor = EXCLUDED.fixed_minor, updated_at = EXCLUDED.updated_at
RETURNING *
"""
_PRICING = "SELECT * FROM merchant_pricing WHERE merchant_id = $1 ORDER BY currency"


async def upsert_pricing(
    connection: Connection, merchant_id: str, currency: str, *, basis_points: int, fixed_minor: int, moment: datetime
) -> AnyRow | None:
    row: AnyRow | None = await connection.fetchrow(_UPSERT_PRICING, merchant_id, currency, basis_points, fixed_minor, moment)
    return row


async def pricing_rows(connection: Connection, merchant_id: str) -> list[AnyRow]:
    rows: list[AnyRow] = await connection.fetch(_PRICING, merchant_id)
    return rows
