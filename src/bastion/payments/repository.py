"""All SQL of the payments context."""

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.payments.tables import customers
from bastion.platform.db import AnyRow
from bastion.platform.pagination import Page, PageRequest, fetch_page

# Built once: SQLAlchemy then reuses the compiled form on every call.
_INSERT_CUSTOMER = insert(customers).returning(customers)


async def insert_customer(connection: AsyncConnection, values: dict[str, Any]) -> AnyRow:
    row: AnyRow = (await connection.execute(_INSERT_CUSTOMER, values)).one()
    return row


async def get_customer(connection: AsyncConnection, customer_id: str, *, for_update: bool = False) -> AnyRow | None:
    query = select(customers).where(customers.c.id == customer_id)
    if for_update:
        query = query.with_for_update()
    return (await connection.execute(query)).first()


async def update_customer(connection: AsyncConnection, customer_id: str, values: dict[str, Any]) -> AnyRow:
    statement = update(customers).where(customers.c.id == customer_id).values(values).returning(customers)
    row: AnyRow = (await connection.execute(statement)).one()
    return row


async def live_customer_exists(connection: AsyncConnection, customer_id: str) -> bool:
    query = select(customers.c.id).where(customers.c.id == customer_id, customers.c.deleted_at.is_(None))
    return (await connection.execute(query)).first() is not None


async def page_customers(connection: AsyncConnection, request: PageRequest, email: str | None) -> Page:
    query = select(customers).where(customers.c.deleted_at.is_(None))
    if email is not None:
        query = query.where(customers.c.email == email)
    return await fetch_page(connection, query, customers.c.id, request)
