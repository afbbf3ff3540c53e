"""Tenant isolation: merchant A's key cannot reach merchant B's objects through any route,
and PostgreSQL row-level security holds as a second wall under the API's own role."""

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from asyncpg.exceptions import InsufficientPrivilegeError
from fastapi.routing import APIRoute

from bastion import routing
from bastion.api.app import route_scope, served_routes
from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Connection, Tenant
from tests.support.acquirer import deliver, notifications_of
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess
from tests.support.vault import DISPUTED, payment_method, token_id

# Tables that hold tenant rows, and the column naming their merchant.
_TENANT_TABLES = {
    "customers": "merchant_id",
    "events": "merchant_id",
    "audit_events": "merchant_id",
    "idempotency_keys": "merchant_id",
    "merchants": "id",
    "ledger_accounts": "merchant_id",
    "ledger_balances": "merchant_id",
    "ledger_entries": "merchant_id",
    "ledger_postings": "merchant_id",
    "ledger_open_holds": "merchant_id",
    "payment_methods": "merchant_id",
    "payment_intents": "merchant_id",
    "charges": "merchant_id",
    "refunds": "merchant_id",
    "disputes": "merchant_id",
    "balance_transactions": "merchant_id",
    "risk_rulesets": "merchant_id",
    "risk_lists": "merchant_id",
    "risk_list_items": "merchant_id",
    "risk_decisions": "merchant_id",
    "risk_velocity_subjects": "merchant_id",
    "reviews": "merchant_id",
    "webhook_endpoints": "merchant_id",
    "webhook_deliveries": "merchant_id",
    "webhook_attempts": "merchant_id",
    "connector_accounts": "merchant_id",
    "routing_rules": "merchant_id",
    "routing_outcomes": "merchant_id",
}
# The body a write with an id needs to get past validation and reach the id's look-up.
_BODIES = {
    "/v1/risk/lists/{list_id}/items": {"value": "a@example.com"},
    "/v1/webhook_endpoints/{endpoint_id}/recover": {"since": int(time.time()) - 60},
}


@dataclass(frozen=True)
class World:
    """Two merchants, each with a customer (and so an event, audit rows and an idempotency
    key), two ledger accounts with a hold between them, a card payment method, a PaymentIntent
    authorized with it (and so its charge) and one waiting for a payment method, one paid and
    refunded in part, and one paid and disputed; a risk list with an item, and a ruleset."""

    a: Credentials
    b: Credentials
    a_customer: dict[str, Any]
    b_customer: dict[str, Any]
    a_event_id: str
    b_event_id: str
    a_ledger: dict[str, str]
    b_ledger: dict[str, str]
    a_payment_method_id: str
    b_payment_method_id: str
    a_payments: dict[str, str]
    b_payments: dict[str, str]
    a_risk: dict[str, str]
    b_risk: dict[str, str]
    a_webhooks: dict[str, str]
    b_webhooks: dict[str, str]
    a_accounts: dict[str, str]
    b_accounts: dict[str, str]
    a_routing: dict[str, str]
    b_routing: dict[str, str]

    @property
    def b_ids_by_param(self) -> dict[str, str]:
        # A route with a path parameter not named here fails the test: add B's id for it.
        return {
            "customer_id": self.b_customer["id"],
            "event_id": self.b_event_id,
            "payment_method_id": self.b_payment_method_id,
            "intent_id": self.b_payments["intent_id"],
            "charge_id": self.b_payments["charge_id"],
            "refund_id": self.b_payments["refund_id"],
            "dispute_id": self.b_payments["dispute_id"],
            "transaction_id": self.b_payments["balance_transaction_id"],
            **self.b_ledger,
            **self.b_risk,
            **self.b_webhooks,
            **self.b_accounts,
            **self.b_routing,
        }


async def _customer_and_event(platform: Platform, credentials: Credentials, email: str) -> tuple[dict[str, Any], str]:
    async with platform.client(credentials) as client:
        created = await client.post("/v1/customers", json={"email": email}, headers={"Idempotency-Key": f"create-{email}"})
        assert created.status_code == 200, created.text
        events = (await client.get("/v1/events")).json()["data"]
    customer: dict[str, Any] = created.json()
    [event] = events
    return customer, str(event["id"])


async def _ledger(platform: Platform, credentials: Credentials) -> dict[str, str]:
    """Two accounts and a hold between them: ids for every ledger route's path."""
    async with platform.client(credentials) as client:
        accounts = [
            (await client.post("/v1/ledger/accounts", json={"currency": "EUR", "type": "asset"})).json()["id"] for _ in range(2)
        ]
        postings = [
            {"account": account, "direction": direction, "amount_minor": 500, "currency": "EUR"}
            for account, direction in zip(accounts, ("debit", "credit"), strict=True)
        ]
        hold = await client.post("/v1/ledger/entries", json={"postings": postings, "pending": True})
        assert hold.status_code == 200, hold.text
    # Only account_id and entry_id name path parameters; the other account is for the lists.
    return {"account_id": accounts[0], "entry_id": hold.json()["id"], "credited_account_id": accounts[1]}


async def _payments(platform: Platform, vault: ApiProcess, credentials: Credentials, method: str) -> dict[str, str]:
    disputed_method = await payment_method(platform, vault, credentials, number=DISPUTED)
    async with platform.client(credentials) as client:
        body = {"amount": 900, "currency": "EUR", "payment_method": method, "capture_method": "manual", "confirm": True}
        authorized = await client.post("/v1/payment_intents", json=body)
        assert authorized.status_code == 200, authorized.text
        waiting = await client.post("/v1/payment_intents", json={"amount": 900, "currency": "EUR"})
        paid = await client.post("/v1/payment_intents", json=body | {"capture_method": "automatic"})
        refund = await client.post("/v1/refunds", json={"payment_intent": paid.json()["id"], "amount": 100})
        assert refund.status_code == 200, refund.text
        disputed = await client.post(
            "/v1/payment_intents", json=body | {"capture_method": "automatic", "payment_method": disputed_method}
        )
        disputed_charge = disputed.json()["latest_charge"]
        for notification in await notifications_of(platform.database, disputed_charge):
            assert (await deliver(client, platform.settings, notification)).status_code == 200
        dispute = (await client.get("/v1/disputes", params={"charge": disputed_charge})).json()["data"][0]
        movements = (await client.get("/v1/balance_transactions", params={"limit": 100})).json()["data"]
    return {
        # Each movement of its balance (captures, a refund, a dispute's fee): listed, one named for its route.
        **{f"balance_transaction_{index}": movement["id"] for index, movement in enumerate(movements)},
        "balance_transaction_id": movements[0]["id"],
        "intent_id": authorized.json()["id"],
        "charge_id": authorized.json()["latest_charge"],
        "waiting_intent_id": waiting.json()["id"],
        "paid_intent_id": paid.json()["id"],
        "paid_charge_id": paid.json()["latest_charge"],
        "refund_id": refund.json()["id"],
        "disputed_intent_id": disputed.json()["id"],
        "disputed_charge_id": disputed_charge,
        "dispute_id": dispute["id"],
        "disputed_payment_method_id": disputed_method,
    }


async def _risk(platform: Platform, vault: ApiProcess, credentials: Credentials) -> dict[str, str]:
    """A list with an item, a live ruleset naming it, and a payment it sent to review."""
    method = await payment_method(platform, vault, credentials)
    async with platform.client(credentials) as client:
        made = await client.post("/v1/risk/lists", json={"alias": "vip", "name": "VIP", "item_type": "email"})
        assert made.status_code == 200, made.text
        item = await client.post(f"/v1/risk/lists/{made.json()['id']}/items", json={"value": "vip@example.com"})
        rules = [{"rule": "allow if :customer_email: in @vip"}, {"rule": "review if :amount: = 777"}]
        ruleset = await client.post("/v1/risk/rulesets", json={"rules": rules})
        assert ruleset.status_code == 200, ruleset.text
        await client.post(f"/v1/risk/rulesets/{ruleset.json()['id']}/activate", json={})
        body = {"amount": 777, "currency": "EUR", "payment_method": method, "confirm": True}
        assert (await client.post("/v1/payment_intents", json=body)).status_code == 200
        [review] = (await client.get("/v1/reviews")).json()["data"]
    return {
        "list_id": made.json()["id"],
        "item_id": item.json()["id"],
        "ruleset_id": ruleset.json()["id"],
        "review_payment_method_id": method,
        "review_id": review["id"],
        "review_intent_id": review["payment_intent"],
        "review_charge_id": review["charge"],
    }


async def _webhooks(platform: Platform, credentials: Credentials) -> dict[str, str]:
    async with platform.client(credentials) as client:
        made = await client.post("/v1/webhook_endpoints", json={"url": "https://hooks.example.com/x", "enabled_events": ["*"]})
        assert made.status_code == 200, made.text
        # Any of its events: the world made it customers and payments before.
        (event,) = (await client.get("/v1/events", params={"limit": 1})).json()["data"]
    endpoint_id, delivery_id = made.json()["id"], new_id("whd")
    # As the worker's fan-out and sender would have written them.
    async with platform.owner.transaction() as connection:
        await connection.execute(
            "INSERT INTO webhook_deliveries (id, merchant_id, livemode, endpoint_id, event_id, event_type, status, attempts,"
            " created_at, updated_at) VALUES ($1, $2, false, $3, $4, $5, 'succeeded', 1, now(), now())",
            delivery_id,
            credentials.merchant_id,
            endpoint_id,
            event["id"],
            event["type"],
        )
        await connection.execute(
            "INSERT INTO webhook_attempts (id, merchant_id, livemode, delivery_id, attempted_at, duration_ms, status_code,"
            " succeeded) VALUES ($1, $2, false, $3, now(), 5, 200, true)",
            new_id("wha"),
            credentials.merchant_id,
            delivery_id,
        )
    return {"endpoint_id": endpoint_id, "delivery_id": delivery_id}


async def _connector_accounts(platform: Platform, credentials: Credentials) -> dict[str, str]:
    async with platform.client(credentials) as client:
        made = await client.post("/v1/connector_accounts", json={"connector": "sandbox"})
        assert made.status_code == 200, made.text
    return {"account_id": made.json()["id"]}


async def _routing(platform: Platform, credentials: Credentials, account_id: str) -> dict[str, str]:
    """Live routing rules sending everything to the account, and an outcome it counted."""
    async with platform.client(credentials) as client:
        made = await client.post("/v1/routing_rules", json={"rules": [], "default": [account_id]})
        assert made.status_code == 200, made.text
        assert (await client.post(f"/v1/routing_rules/{made.json()['id']}/activate")).status_code == 200
    tenant = Tenant(credentials.merchant_id, livemode=False)
    async with platform.services.database.unit_of_work(tenant, Actor(id="test")) as uow:
        await routing.record_outcome(uow, account_id, currency="EUR", card_brand="visa", succeeded=True)
    return {"routing_rules_id": made.json()["id"]}


@pytest.fixture
async def world(platform: Platform, vault: ApiProcess, acquirer: ApiProcess, merchant: Credentials) -> World:
    other = await platform.merchant(name="Merchant B")
    a_customer, a_event_id = await _customer_and_event(platform, merchant, "a@example.com")
    b_customer, b_event_id = await _customer_and_event(platform, other, "b@example.com")
    a_ledger, b_ledger = await _ledger(platform, merchant), await _ledger(platform, other)
    a_payment_method = await payment_method(platform, vault, merchant)
    b_payment_method = await payment_method(platform, vault, other)
    return World(
        merchant,
        other,
        a_customer,
        b_customer,
        a_event_id,
        b_event_id,
        a_ledger,
        b_ledger,
        a_payment_method,
        b_payment_method,
        await _payments(platform, vault, merchant, a_payment_method),
        await _payments(platform, vault, other, b_payment_method),
        await _risk(platform, vault, merchant),
        await _risk(platform, vault, other),
        await _webhooks(platform, merchant),
        await _webhooks(platform, other),
        a_accounts := await _connector_accounts(platform, merchant),
        b_accounts := await _connector_accounts(platform, other),
        await _routing(platform, merchant, a_accounts["account_id"]),
        await _routing(platform, other, b_accounts["account_id"]),
    )


@pytest.fixture(params=["both walls", "the application's wall alone"])
async def walls(request: pytest.FixtureRequest, platform: Platform) -> AsyncIterator[str]:
    """Each wall on its own: the walks run once as deployed, and once with row-level security
    switched off on the API's tables, so that a query missing its `merchant_id` fails them."""
    wall: str = request.param
    if wall == "both walls":
        yield wall
        return
    async with platform.owner.transaction() as connection:
        tables = [
            row["relname"]
            for row in await connection.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relrowsecurity"
            )
        ]
        assert set(_TENANT_TABLES) <= set(tables)
        for table in tables:
            await connection.execute(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY')
    try:
        yield wall
    finally:
        async with platform.owner.transaction() as connection:
            for table in tables:
                await connection.execute(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY')


def _guarded_api_routes(platform: Platform) -> list[tuple[str, APIRoute]]:
    return [
        (str(context.path), context.original_route)
        for context in served_routes(platform.app)
        if isinstance(context.original_route, APIRoute) and route_scope(context.original_route) is not None
    ]


async def test_routes_with_an_id_answer_404_for_another_merchants_objects(platform: Platform, world: World, walls: str) -> None:
    async with platform.client(world.b) as client:
        b_events = len((await client.get("/v1/events", params={"limit": 100})).json()["data"])
    probed = 0
    async with platform.client(world.a) as client:
        for path, route in _guarded_api_routes(platform):
            names = re.findall(r"\{(\w+)\}", path)
            if not names:
                continue
            assert set(names) <= world.b_ids_by_param.keys(), f"{path}: no id of merchant B for {names}"
            concrete = re.sub(r"\{(\w+)\}", lambda match: world.b_ids_by_param[match.group(1)], path)
            for method in sorted(route.methods or ()):
                body = _BODIES.get(path, {}) if method == "POST" else None
                response = await client.request(method, concrete, json=body)
                assert response.status_code == 404, (method, concrete, response.text)
                assert response.json()["error"]["code"] == "resource_missing"
                probed += 1
    assert probed >= 4, "the walk must reach the customer and event routes"
    async with platform.client(world.b) as client:
        assert (await client.get(f"/v1/customers/{world.b_customer['id']}")).json() == world.b_customer
        assert (await client.get(f"/v1/events/{world.b_event_id}")).status_code == 200
        after = len((await client.get("/v1/events", params={"limit": 100})).json()["data"])
        assert after == b_events, "A's attempts must not act on B's objects"
        hold = (await client.get(f"/v1/ledger/entries/{world.b_ledger['entry_id']}")).json()
        assert (hold["status"], hold["resolved_by"], hold["reversed_by"]) == ("pending", None, None)


async def test_lists_show_only_the_callers_objects(platform: Platform, world: World, walls: str) -> None:
    async with platform.owner.transaction() as connection:
        a_events = {
            row["id"] for row in await connection.fetch("SELECT id FROM events WHERE merchant_id = $1", world.a.merchant_id)
        }
        # Its payments made ledger accounts and entries of its own (docs/payments.md, Money in the ledger).
        a_accounts = {
            row["id"]
            for row in await connection.fetch(
                "SELECT id FROM ledger_accounts WHERE merchant_id = $1 "
                "UNION SELECT id FROM ledger_entries WHERE merchant_id = $1",
                world.a.merchant_id,
            )
        }
    a_ids = {world.a_customer["id"], *a_events, *a_accounts, *world.a_ledger.values(), world.a_payment_method_id}
    a_ids |= set(world.a_payments.values()) | set(world.a_risk.values()) | set(world.a_webhooks.values())
    a_ids |= set(world.a_accounts.values()) | set(world.a_routing.values())
    b_ids = set(world.b_ids_by_param.values())
    async with platform.client(world.a) as client:
        for path, route in _guarded_api_routes(platform):
            if "{" in path or "GET" not in (route.methods or ()):
                continue
            if path in {"/v1/risk/attributes", "/v1/risk/settings", "/v1/connectors", "/v1/routing_rules/live"}:
                # Not lists of the caller's objects: the catalogue and the feature matrix are
                # everybody's, the settings and the live routing rules the caller's own.
                continue
            if path == "/v1/balance":
                # Not a list: A's balance is A's payments alone (EUR 9.00 paid twice, less the fees;
                # 1.00 refunded and the 15.00 dispute fee; the disputed 9.00 is held, not posted).
                balance = (await client.get(path)).json()
                assert balance["pending"] == [{"amount": 2 * (900 - 56), "currency": "EUR"}], balance
                assert balance["available"] == [{"amount": -100 - 1500, "currency": "EUR"}], balance
                continue
            listed = (await client.get(path)).json()["data"]
            assert listed, path
            assert {item["id"] for item in listed} <= a_ids, path
            for cursor in sorted(b_ids):
                # Another merchant's id as a cursor is unknown, exactly like an id that never existed.
                response = await client.get(path, params={"starting_after": cursor})
                assert response.status_code == 404, (path, cursor, response.text)
                assert (response.json()["error"]["code"], response.json()["error"]["param"]) == (
                    "resource_missing",
                    "starting_after",
                )
        by_email = (await client.get("/v1/customers", params={"email": world.b_customer["email"]})).json()["data"]
    assert by_email == []


async def _count(connection: Connection, table: str, where: str = "true", *args: Any) -> int:
    return int(await connection.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args))


async def test_app_role_without_tenant_sees_no_rows(platform: Platform, world: World) -> None:
    for table, column in _TENANT_TABLES.items():
        async with platform.owner.transaction() as connection:
            assert await _count(connection, table, f"{column} = $1", world.b.merchant_id) > 0, table
        async with platform.services.database.transaction() as connection:
            assert await _count(connection, table) == 0, table


async def test_app_role_with_a_tenant_sees_only_that_tenant(platform: Platform, world: World) -> None:
    app_database = platform.services.database
    async with app_database.unit_of_work(Tenant(world.a.merchant_id, livemode=False), Actor(id="test")) as uow:
        for table, column in _TENANT_TABLES.items():
            assert await _count(uow.connection, table, f"{column} = $1", world.a.merchant_id) > 0, table
            assert await _count(uow.connection, table, f"{column} <> $1", world.a.merchant_id) == 0, table
        updated = await uow.connection.execute("UPDATE customers SET name = 'taken over' WHERE id = $1", world.b_customer["id"])
        assert updated == "UPDATE 0"
    async with app_database.unit_of_work(Tenant(world.a.merchant_id, livemode=True), Actor(id="test")) as uow:
        assert await _count(uow.connection, "customers") == 0, "live mode must not see test-mode rows"


async def test_app_role_cannot_write_into_another_tenant(platform: Platform, world: World) -> None:
    tenant = Tenant(world.a.merchant_id, livemode=False)
    with pytest.raises(InsufficientPrivilegeError, match="row-level security"):
        async with platform.services.database.unit_of_work(tenant, Actor(id="test")) as uow:
            await uow.connection.execute(
                "INSERT INTO customers (id, merchant_id, livemode, metadata) VALUES ($1, $2, false, '{}')",
                "cus_01M84JBVTJ99ERYXDBX1KDYTHZ",
                world.b.merchant_id,
            )


async def test_app_role_reaches_api_keys_only_through_the_lookup_function(platform: Platform, world: World) -> None:
    app_database = platform.services.database
    with pytest.raises(InsufficientPrivilegeError, match="permission denied for table api_keys"):
        async with app_database.unit_of_work(Tenant(world.a.merchant_id, livemode=False), Actor(id="test")) as uow:
            await uow.connection.execute("SELECT id FROM api_keys")
    lookup = "SELECT id, merchant_id FROM api_key_by_hash($1)"
    hasher = platform.services.authenticator.hasher
    async with app_database.transaction() as connection:
        found = await connection.fetch(lookup, hasher.digest(world.a.secret))
        assert [tuple(row) for row in found] == [(world.a.key_id, world.a.merchant_id)]
        guessed = await connection.fetch(lookup, hasher.digest("sk_test_guess"))
        assert guessed == []


async def test_service_roles_have_no_superuser_and_no_bypassrls(platform: Platform) -> None:
    roles = platform.database.roles
    async with platform.services.database.transaction() as connection:
        assert await connection.fetchval("SELECT current_user") == roles.app
        rows = await connection.fetch(
            "SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = ANY($1::text[])", list(roles.all)
        )
    assert sorted(tuple(row) for row in rows) == sorted((role, False, False) for role in roles.all)


# Every request field that names another object. The walk below sends merchant B's object
# there with merchant A's key; `test_every_reference_field_is_walked` fails when a route
# gains such a field that is not listed here.
_REFERENCE_FIELDS = {
    ("POST", "/v1/payment_methods", "card[token]"),
    ("POST", "/v1/payment_methods", "customer"),
    ("POST", "/v1/ledger/entries", "postings[0][account]"),
    ("POST", "/v1/ledger/entries/batch", "entries[0][postings][0][account]"),
    ("GET", "/v1/payment_methods", "customer"),
    ("GET", "/v1/ledger/entries", "account"),
    ("POST", "/v1/payment_intents", "customer"),
    ("POST", "/v1/payment_intents", "payment_method"),
    ("POST", "/v1/payment_intents/{intent_id}", "customer"),
    ("POST", "/v1/payment_intents/{intent_id}", "payment_method"),
    ("POST", "/v1/payment_intents/{intent_id}/confirm", "payment_method"),
    ("GET", "/v1/payment_intents", "customer"),
    ("GET", "/v1/charges", "payment_intent"),
    ("POST", "/v1/refunds", "payment_intent"),
    ("POST", "/v1/refunds", "charge"),
    ("GET", "/v1/refunds", "payment_intent"),
    ("GET", "/v1/refunds", "charge"),
    ("GET", "/v1/disputes", "payment_intent"),
    ("GET", "/v1/disputes", "charge"),
}
# Names that refer to an object, in request bodies and query strings.
_REFERENCE_NAMES = {"customer", "account", "token", "payment_method", "entry", "payment_intent", "charge"}


def _reference_fields_in_schema(document: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(method, path, field) of every body property and query parameter named like an object."""
    schemas = document["components"]["schemas"]
    found: set[tuple[str, str, str]] = set()

    def walk(schema: dict[str, Any], prefix: str, method: str, path: str) -> None:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema
        for option in schema.get("anyOf", []):
            walk(option, prefix, method, path)
        if "items" in schema:
            walk(schema["items"], f"{prefix}[0]", method, path)
        for name, child in schema.get("properties", {}).items():
            field = f"{prefix}[{name}]" if prefix else name
            if name in _REFERENCE_NAMES:
                found.add((method, path, field))
            walk(child, field, method, path)

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"] in _REFERENCE_NAMES:
                    found.add((method.upper(), path, parameter["name"]))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                walk(body, "", method.upper(), path)
    return found


async def test_every_reference_field_is_walked(platform: Platform) -> None:
    assert _reference_fields_in_schema(platform.app.openapi()) == _REFERENCE_FIELDS


async def _writes(platform: Platform, world: World) -> dict[str, int]:
    """What merchant B's references could have written: A's rows in the tables a reference reaches."""
    async with platform.owner.transaction() as connection:
        return {
            table: await _count(connection, table, "merchant_id = $1", world.a.merchant_id)
            for table in (
                "payment_methods",
                "payment_intents",
                "charges",
                "refunds",
                "ledger_entries",
                "idempotency_keys",
                "audit_events",
                "events",
            )
        }


async def test_references_to_another_merchants_objects_are_missing_and_write_nothing(
    platform: Platform, vault: ApiProcess, world: World, walls: str
) -> None:
    a_token, b_token = (await token_id(vault, world.a)), (await token_id(vault, world.b))

    def legs(debit: str, credit: str) -> list[dict[str, Any]]:
        return [
            {"account": account, "direction": direction, "amount_minor": 100, "currency": "EUR"}
            for account, direction in ((debit, "debit"), (credit, "credit"))
        ]

    b_account, a_account = world.b_ledger["account_id"], world.a_ledger["credited_account_id"]
    probes = [
        ("POST", "/v1/payment_methods", {"type": "card", "card": {"token": b_token}}, None, "card[token]"),
        (
            "POST",
            "/v1/payment_methods",
            {"type": "card", "card": {"token": a_token}, "customer": world.b_customer["id"]},
            None,
            "customer",
        ),
        ("POST", "/v1/ledger/entries", {"postings": legs(b_account, a_account)}, None, "postings[0][account]"),
        (
            "POST",
            "/v1/ledger/entries/batch",
            {"entries": [{"postings": legs(a_account, b_account)}]},
            None,
            "entries[0][postings][1][account]",
        ),
        ("GET", "/v1/payment_methods", None, {"customer": world.b_customer["id"]}, "customer"),
        ("GET", "/v1/ledger/entries", None, {"account": b_account}, "account"),
        ("POST", "/v1/payment_intents", {"amount": 100, "currency": "EUR", "customer": world.b_customer["id"]}, None, "customer"),
        (
            "POST",
            "/v1/payment_intents",
            {"amount": 100, "currency": "EUR", "payment_method": world.b_payment_method_id},
            None,
            "payment_method",
        ),
        ("POST", "/v1/payment_intents/{intent_id}", {"customer": world.b_customer["id"]}, None, "customer"),
        ("POST", "/v1/payment_intents/{intent_id}", {"payment_method": world.b_payment_method_id}, None, "payment_method"),
        (
            "POST",
            "/v1/payment_intents/{intent_id}/confirm",
            {"payment_method": world.b_payment_method_id},
            None,
            "payment_method",
        ),
        ("GET", "/v1/payment_intents", None, {"customer": world.b_customer["id"]}, "customer"),
        ("GET", "/v1/charges", None, {"payment_intent": world.b_payments["intent_id"]}, "payment_intent"),
        ("POST", "/v1/refunds", {"payment_intent": world.b_payments["paid_intent_id"]}, None, "payment_intent"),
        ("POST", "/v1/refunds", {"charge": world.b_payments["paid_charge_id"]}, None, "charge"),
        ("GET", "/v1/refunds", None, {"payment_intent": world.b_payments["paid_intent_id"]}, "payment_intent"),
        ("GET", "/v1/refunds", None, {"charge": world.b_payments["paid_charge_id"]}, "charge"),
        ("GET", "/v1/disputes", None, {"payment_intent": world.b_payments["disputed_intent_id"]}, "payment_intent"),
        ("GET", "/v1/disputes", None, {"charge": world.b_payments["disputed_charge_id"]}, "charge"),
    ]
    assert {(method, path, param.replace("[1]", "[0]")) for method, path, _, _, param in probes} == _REFERENCE_FIELDS
    before = await _writes(platform, world)
    async with platform.client(world.a) as client:
        for method, template, body, query, param in probes:
            # A's own intent that waits for a payment method: only the reference can be refused.
            path = template.replace("{intent_id}", world.a_payments["waiting_intent_id"])
            response = await client.request(method, path, json=body, params=query)
            assert response.status_code in (400, 404), (method, path, param, response.text)
            error = response.json()["error"]
            # The ledger names its missing accounts `account_missing`, per entry of a batch (docs/ledger.md).
            code = error["results"][0]["code"] if error["code"] == "batch_rejected" else error["code"]
            assert code in ("resource_missing", "account_missing"), (method, path, response.text)
            assert error["param"] == param, (method, path, response.text)
    assert await _writes(platform, world) == before, "a refused reference wrote nothing"
