"""The session acquirer as tests meet it: its notifications, which it sends to
`TestDatabase.api_port`, where no API listens unless a test starts one, so that they wait in its
table, and a test reads them there and posts them, signed, to the in-process API, in the order and
as often as it chooses; and an API whose confirms never hear the acquirer's answer."""

import dataclasses
import time
from typing import Any

import asyncpg
import httpx
import orjson

from bastion import bootstrap
from bastion.api.app import create_app
from bastion.api.context import Services
from bastion.payments import intents
from bastion.payments.connectors import Answer, AttemptResult, Authorization
from bastion.payments.directory import ConnectorDirectory
from bastion.payments.sandbox import SIGNATURE_HEADER, SandboxConnector
from bastion.platform.db import Tenant, plain_dsn
from bastion.platform.idempotency import PhasedCommands
from bastion.platform.settings import Settings
from bastion.platform.signatures import sign
from bastion.risk import Assessor
from tests.support.platform import Credentials
from tests.support.postgres import TestDatabase

NOTIFICATIONS_PATH = bootstrap.ACQUIRER_NOTIFICATIONS_PATH


def notification_secret(settings: Settings) -> bytes:
    return bootstrap.keyring(settings).secret(bootstrap.ACQUIRER_NOTIFICATIONS_PURPOSE)


async def notifications_of(test_database: TestDatabase, reference: str) -> list[dict[str, Any]]:
    """Every notification the acquirer recorded about Bastion's `reference` (a charge's id: its
    payment and its dispute; a refund's id), oldest first."""
    return await _notifications(test_database, "body->'data'->>'reference' = $1", reference)


async def notifications_to(test_database: TestDatabase, merchant_id: str) -> list[dict[str, Any]]:
    """Every notification the acquirer recorded for the merchant, oldest first."""
    return await _notifications(test_database, "body->>'merchant' = $1", merchant_id)


async def _notifications(test_database: TestDatabase, condition: str, value: str) -> list[dict[str, Any]]:
    connection = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        query = f"SELECT body::text FROM acquirer.notifications WHERE {condition} ORDER BY created_at, id"
        rows = await connection.fetch(query, value)
    finally:
        await connection.close()
    return [orjson.loads(row["body"]) for row in rows]


async def deliver(
    client: httpx.AsyncClient, settings: Settings, notification: dict[str, Any], *, signed_at: int | None = None
) -> httpx.Response:
    body, headers = signed(settings, notification, signed_at=signed_at)
    return await client.post(NOTIFICATIONS_PATH, content=body, headers=headers)


def signed(settings: Settings, notification: dict[str, Any], *, signed_at: int | None = None) -> tuple[bytes, dict[str, str]]:
    """The notification's body and headers as the acquirer sends it."""
    body = orjson.dumps(notification)
    signature = sign(notification_secret(settings), body, int(time.time()) if signed_at is None else signed_at)
    return body, {SIGNATURE_HEADER: signature}


class _AnswerLost(SandboxConnector):
    """The sandbox connector whose authorization reaches the acquirer, and whose answer is lost."""

    def __init__(self, connector: SandboxConnector) -> None:
        self.__dict__.update(connector.__dict__)

    async def authorize(self, tenant: Tenant, request: Authorization) -> Answer:
        answered = await super().authorize(tenant, request)
        return Answer(AttemptResult.UNKNOWN, reference=answered.reference)


def blind_client(services: Services, credentials: Credentials) -> httpx.AsyncClient:
    """A client of an in-process API on `services` whose confirms reach the acquirer and never
    hear its answer: the intent stays `processing` until a sync or a notification settles it."""
    commands = services.commands
    connector = services.connectors.sandbox
    assert isinstance(connector, SandboxConnector)
    lost_answers = ConnectorDirectory(services.database, services.connector_credentials, _AnswerLost(connector), {})
    lost = dict(commands.registry) | {
        intents.CONFIRM: intents.confirm_phases(
            services.database,
            lost_answers,
            Assessor(services.database, budget_ms=services.settings.risk_budget_ms, velocity=services.velocity),
            services.velocity,
        )
    }
    blind = dataclasses.replace(
        services, commands=PhasedCommands(commands.database, lost, hold_timeout_s=commands.hold_timeout_s)
    )
    transport = httpx.ASGITransport(app=create_app(blind), client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://bastion.test", headers=credentials.headers)
