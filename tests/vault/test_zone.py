"""The vault's walls. In PostgreSQL: the API's and the worker's roles have no privilege on the
`vault` schema or anything in it, the vault's role none on the API's tables (one function
tells it about publishable keys), and row-level security keeps a merchant's cards to that
merchant inside the vault. On the network: the internal listener speaks only mutual TLS with a
client certificate of the install's CA made for a client, and each listener serves only its
own routes."""

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from asyncpg.exceptions import InsufficientPrivilegeError

from bastion import bootstrap
from bastion.platform.certs import CertPaths, client_ssl_context, init_certs
from bastion.platform.settings import Settings
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import token_id

CLIENT_TIMEOUT_S = 5.0
_ALL_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"
_ALL_COLUMN_PRIVILEGES = "SELECT, INSERT, UPDATE, REFERENCES"
# Every relation of a schema, and whether `role` holds any privilege on it (or any of its columns).
_RELATIONS_REACHABLE = f"""
SELECT c.relname,
    CASE WHEN c.relkind = 'S' THEN has_sequence_privilege($1, c.oid, 'USAGE, SELECT, UPDATE')
         ELSE has_table_privilege($1, c.oid, '{_ALL_TABLE_PRIVILEGES}')
              OR has_any_column_privilege($1, c.oid, '{_ALL_COLUMN_PRIVILEGES}') END AS reachable
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $2 AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
"""
_FUNCTIONS_CALLABLE = """
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = $2 AND has_function_privilege($1, p.oid, 'EXECUTE')
"""
# Functions that run with their owner's rights: the ones that could hand out what a role
# cannot read itself (trigger functions cannot be called directly).
_DEFINER_FUNCTIONS_CALLABLE = """
SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = $2 AND p.prosecdef AND p.prorettype <> 'trigger'::regtype AND has_function_privilege($1, p.oid, 'EXECUTE')
"""
_SCHEMA_PRIVILEGES = "SELECT has_schema_privilege($1, 'vault', 'USAGE'), has_schema_privilege($1, 'vault', 'CREATE')"
_ROLE_POWERS = "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = $1"
_API_TABLES = ("customers", "payment_methods", "api_keys", "events", "audit_events", "merchants")
_VAULT_TABLES = ("cards", "cvcs", "tokens", "key_versions")
_TENANT = "SELECT set_config('bastion.merchant_id', $1, true), set_config('bastion.livemode', $2, true)"


@asynccontextmanager
async def _connected_as(settings: Settings, database: TestDatabase, role: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(bootstrap.role_dsn(settings, database.owner_url, role))
    try:
        yield connection
    finally:
        await connection.close()


async def _reachable(platform: Platform, role: str, schema: str) -> tuple[set[str], set[str]]:
    """The relations of `schema` (all) and those `role` holds any privilege on."""
    async with platform.owner.transaction() as connection:
        rows = await connection.fetch(_RELATIONS_REACHABLE, role, schema)
    return {row["relname"] for row in rows}, {row["relname"] for row in rows if row["reachable"]}


@pytest.mark.parametrize("service", ["app", "worker"])
async def test_the_api_and_the_worker_cannot_reach_the_vault_schema(
    platform: Platform, settings: Settings, test_database: TestDatabase, service: str
) -> None:
    role = getattr(test_database.roles, service)
    relations, reachable = await _reachable(platform, role, "vault")
    assert set(_VAULT_TABLES) <= relations, "the enumeration must see the vault's tables"
    assert reachable == set()
    async with platform.owner.transaction() as connection:
        assert tuple(await connection.fetchrow(_SCHEMA_PRIVILEGES, role)) == (False, False)
        assert await connection.fetch(_FUNCTIONS_CALLABLE, role, "vault") == []
        assert await connection.fetchval(_ROLE_POWERS, role) is False
    async with _connected_as(settings, test_database, role) as connection:
        for table in sorted(relations):
            assert table.isidentifier(), table
            with pytest.raises(InsufficientPrivilegeError):
                await connection.fetch(f"SELECT * FROM vault.{table} LIMIT 1")


async def test_the_vault_cannot_read_the_api_tables(platform: Platform, settings: Settings, test_database: TestDatabase) -> None:
    role = test_database.roles.vault
    relations, reachable = await _reachable(platform, role, "public")
    assert set(_API_TABLES) <= relations, "the enumeration must see the API's tables"
    assert reachable == set()
    async with platform.owner.transaction() as connection:
        callable_definers = {row["proname"] for row in await connection.fetch(_DEFINER_FUNCTIONS_CALLABLE, role, "public")}
        assert await connection.fetchval(_ROLE_POWERS, role) is False
        # Its own tables: the key versions are read-only to it (only the owner rotates).
        assert not await connection.fetchval(
            "SELECT has_table_privilege($1, 'vault.key_versions', 'INSERT, UPDATE, DELETE, TRUNCATE')", role
        )
    # Looking a publishable key up, and recording card testing (one audit row and one event of
    # fixed kinds, ADR 13): nothing else in the API's tables.
    assert callable_definers == {"vault_merchant_by_publishable_key", "vault_record_card_testing"}
    async with _connected_as(settings, test_database, role) as connection:
        for table in _API_TABLES:
            with pytest.raises(InsufficientPrivilegeError):
                await connection.fetch(f"SELECT * FROM {table} LIMIT 1")
        with pytest.raises(InsufficientPrivilegeError):
            await connection.fetch("SELECT * FROM api_key_by_hash('nothing')")
        assert await connection.fetch("SELECT * FROM vault_merchant_by_publishable_key('nothing')") == []


async def test_row_level_security_inside_the_vault(
    platform: Platform, settings: Settings, test_database: TestDatabase, vault: ApiProcess, merchant: Credentials
) -> None:
    other = await platform.merchant()
    await token_id(vault, merchant)
    await token_id(vault, other)
    async with _connected_as(settings, test_database, test_database.roles.vault) as connection:
        for table in ("cards", "cvcs", "tokens"):
            async with connection.transaction():
                assert await connection.fetch(f"SELECT 1 FROM vault.{table}") == [], "no tenant set: nothing visible"
            async with connection.transaction():
                await connection.execute(_TENANT, merchant.merchant_id, "true")
                assert await connection.fetch(f"SELECT 1 FROM vault.{table}") == [], "live mode: no test-mode rows"
            async with connection.transaction():
                await connection.execute(_TENANT, merchant.merchant_id, "false")
                seen = {row["merchant_id"] for row in await connection.fetch(f"SELECT merchant_id FROM vault.{table}")}
                assert seen == {merchant.merchant_id}, table
                changed = await connection.execute(
                    f"UPDATE vault.{table} SET merchant_id = merchant_id WHERE merchant_id = $1", other.merchant_id
                )
                assert changed == "UPDATE 0"
        async with connection.transaction():
            await connection.execute(_TENANT, merchant.merchant_id, "false")
            with pytest.raises(InsufficientPrivilegeError):
                await connection.execute("UPDATE vault.tokens SET merchant_id = $1", other.merchant_id)


def _context(*, trusted_ca: Path, certificate: tuple[Path, Path] | None) -> ssl.SSLContext:
    """A client that trusts `trusted_ca` for the server and presents `certificate` (cert, key), if any."""
    context = ssl.create_default_context(cafile=trusted_ca)
    if certificate is not None:
        context.load_cert_chain(*certificate)
    return context


def _as_the_api(settings: Settings, database: TestDatabase) -> httpx.AsyncClient:
    """A client of the internal listener holding the API's certificate."""
    return httpx.AsyncClient(
        base_url=settings.vault_internal_url,
        verify=client_ssl_context(CertPaths.under(database.data_dir)),
        timeout=CLIENT_TIMEOUT_S,
    )


async def _healthz(url: str, context: ssl.SSLContext | None = None) -> httpx.Response:
    async with httpx.AsyncClient(verify=context or True, timeout=CLIENT_TIMEOUT_S) as client:
        return await client.get(f"{url}/healthz")


@pytest.mark.parametrize(
    "client", ["no certificate", "a certificate of another CA", "the vault's own server certificate", "plain HTTP"]
)
async def test_the_internal_listener_refuses(
    settings: Settings, test_database: TestDatabase, vault: ApiProcess, tmp_path: Path, client: str
) -> None:
    ours = CertPaths.under(test_database.data_dir)
    theirs, _ = init_certs(tmp_path)
    url, context = settings.vault_internal_url, None
    if client == "no certificate":
        context = _context(trusted_ca=ours.ca_cert, certificate=None)
    elif client == "a certificate of another CA":
        context = _context(trusted_ca=ours.ca_cert, certificate=(theirs.api_cert, theirs.api_key))
    elif client == "the vault's own server certificate":
        # Signed by the right CA, but for a server: a client's certificate must say it is one.
        context = _context(trusted_ca=ours.ca_cert, certificate=(ours.vault_cert, ours.vault_key))
    else:
        url = url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        await _healthz(url, context)


async def test_the_internal_listener_accepts_the_apis_certificate(
    settings: Settings, test_database: TestDatabase, vault: ApiProcess
) -> None:
    response = await _healthz(settings.vault_internal_url, client_ssl_context(CertPaths.under(test_database.data_dir)))
    assert response.status_code == 200


async def test_each_listener_serves_only_its_own_routes(
    settings: Settings, test_database: TestDatabase, vault: ApiProcess, merchant: Credentials
) -> None:
    forward = {"merchant_id": merchant.merchant_id, "livemode": False, "card": "crd_x", "connector": "echo", "request": {}}
    async with httpx.AsyncClient(base_url=vault.url, timeout=CLIENT_TIMEOUT_S) as public:
        assert (await public.post("/internal/v1/forward", json=forward)).status_code == 404
        assert (await public.post("/internal/v1/tokens/tok_x/exchange", json={})).status_code == 404
        assert (await public.get("/readyz")).status_code == 200
    async with _as_the_api(settings, test_database) as internal:
        tokens = await internal.post("/v1/tokens", headers={"Authorization": f"Bearer {merchant.publishable}"}, json={})
        assert tokens.status_code == 404
        assert (await internal.get("/static/bastion.js")).status_code == 404
        assert (await internal.get("/readyz")).status_code == 200


async def test_metrics_of_both_listeners_only_behind_mutual_tls(
    settings: Settings, test_database: TestDatabase, vault: ApiProcess, merchant: Credentials
) -> None:
    await token_id(vault, merchant)
    async with httpx.AsyncClient(base_url=vault.url, timeout=CLIENT_TIMEOUT_S) as public:
        assert (await public.get("/metrics")).status_code == 404
    async with _as_the_api(settings, test_database) as internal:
        response = await internal.get("/metrics")
    assert response.status_code == 200
    tokenized = [
        line
        for line in response.text.splitlines()
        if line.startswith("bastion_http_requests_total{") and 'route="/v1/tokens"' in line and 'status="200"' in line
    ]
    assert len(tokenized) == 1
    assert float(tokenized[0].rsplit(" ", 1)[1]) >= 1
