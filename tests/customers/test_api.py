"""Customers over the real app and database: CRUD, validation, pagination, modes."""

from typing import Any

import pytest

from tests.support.platform import Credentials, Platform


async def test_create_retrieve_update_delete(platform: Platform, merchant: Credentials) -> None:
    created = await platform.create_customer(merchant, email="jenny@example.com", name="Jenny Rosen", metadata={"order": "6735"})
    assert created["id"].startswith("cus_")
    assert created["object"] == "customer"
    assert created["livemode"] is False
    async with platform.client(merchant) as client:
        fetched = (await client.get(f"/v1/customers/{created['id']}")).json()
        assert fetched == created

        updated = await client.post(
            f"/v1/customers/{created['id']}",
            json={"name": "Jenny R.", "phone": "+1 555 555 0100", "metadata": {"order": None, "tier": "gold"}},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["name"] == "Jenny R."
        assert updated.json()["email"] == "jenny@example.com"
        assert updated.json()["metadata"] == {"tier": "gold"}

        cleared = await client.post(f"/v1/customers/{created['id']}", json={"email": None})
        assert cleared.json()["email"] is None

        deleted = await client.delete(f"/v1/customers/{created['id']}")
        assert deleted.json() == {"id": created["id"], "object": "customer", "deleted": True}
        assert (await client.get(f"/v1/customers/{created['id']}")).json()["deleted"] is True
        again = await client.post(f"/v1/customers/{created['id']}", json={"name": "x"})
        assert again.status_code == 404
        assert again.json()["error"]["code"] == "resource_missing"


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"email": "not-an-email"}, "email", "parameter_invalid"),
        ({"email": 5}, "email", "parameter_invalid"),
        ({"phone": "call me"}, "phone", "parameter_invalid"),
        ({"name": "x" * 257}, "name", "parameter_invalid"),
        ({"description": "d" * 351}, "description", "parameter_invalid"),
        ({"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata", "parameter_invalid"),
        ({"metadata": {"k": "v" * 501}}, "metadata[k]", "parameter_invalid"),
        ({"metadata": {"k" * 41: "v"}}, "metadata", "parameter_invalid"),
        ({"metadata": {"k": 1}}, "metadata[k]", "parameter_invalid"),
        ({"emial": "jenny@example.com"}, "emial", "parameter_unknown"),
    ],
)
async def test_bad_fields_are_named(
    platform: Platform, merchant: Credentials, body: dict[str, Any], param: str, code: str
) -> None:
    async with platform.client(merchant) as client:
        response = await client.post("/v1/customers", json=body)
        listed = (await client.get("/v1/customers")).json()
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["code"] == code
    assert error["request_id"] == response.headers["Request-Id"]
    assert listed["data"] == [], "a rejected request must write nothing"


async def test_malformed_and_non_object_bodies(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        for content in (b"{bad", b"[1, 2]", b'"text"', b"null"):
            response = await client.post("/v1/customers", content=content, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, (content, response.text)
            assert response.json()["error"]["type"] == "invalid_request_error"


async def test_oversized_body_is_rejected(platform: Platform, merchant: Credentials) -> None:
    async with platform.client(merchant) as client:
        response = await client.post("/v1/customers", json={"description": "x" * (platform.settings.max_body_bytes + 1)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"


async def test_pagination(platform: Platform, merchant: Credentials) -> None:
    ids = [(await platform.create_customer(merchant, name=f"c{i}"))["id"] for i in range(5)]
    newest_first = list(reversed(ids))
    async with platform.client(merchant) as client:
        first = (await client.get("/v1/customers", params={"limit": 2})).json()
        assert [c["id"] for c in first["data"]] == newest_first[:2]
        assert first["has_more"] is True
        second = (await client.get("/v1/customers", params={"limit": 2, "starting_after": newest_first[1]})).json()
        assert [c["id"] for c in second["data"]] == newest_first[2:4]
        last = (await client.get("/v1/customers", params={"limit": 2, "starting_after": newest_first[3]})).json()
        assert [c["id"] for c in last["data"]] == newest_first[4:]
        assert last["has_more"] is False
        back = (await client.get("/v1/customers", params={"limit": 2, "ending_before": newest_first[4]})).json()
        assert [c["id"] for c in back["data"]] == newest_first[2:4]
        assert back["has_more"] is True

        for params, status, code, param in (
            ({"limit": 0}, 400, "parameter_invalid", "limit"),
            ({"limit": 101}, 400, "parameter_invalid", "limit"),
            ({"limit": "ten"}, 400, "parameter_invalid", "limit"),
            # A cursor that is not a customer of this list is an unknown object, as an id in a path is.
            ({"starting_after": "cus_nope"}, 404, "resource_missing", "starting_after"),
            ({"ending_before": "evt_01M84JBVTJ99ERYXDBX1KDYTHZ"}, 404, "resource_missing", "ending_before"),
            ({"starting_after": ids[0], "ending_before": ids[1]}, 400, "cursors_exclusive", "ending_before"),
        ):
            response = await client.get("/v1/customers", params=params)
            assert (response.status_code, response.json()["error"]["code"]) == (status, code), (params, response.text)
            assert response.json()["error"]["param"] == param


async def test_test_and_live_modes_are_separate_worlds(platform: Platform, merchant: Credentials) -> None:
    live = await platform.api_key(merchant.merchant_id, livemode=True)
    created = await platform.create_customer(merchant, name="test-mode customer")
    async with platform.client(live) as client:
        assert (await client.get(f"/v1/customers/{created['id']}")).status_code == 404
        assert (await client.get("/v1/customers")).json()["data"] == []
        live_customer = (await client.post("/v1/customers", json={"name": "live"})).json()
    assert live_customer["livemode"] is True
    assert live.secret.startswith("sk_live_")


async def test_authentication_and_scopes(platform: Platform, merchant: Credentials) -> None:
    reader = await platform.api_key(merchant.merchant_id, scopes=["customers:read"])
    async with platform.client() as client:
        missing = await client.get("/v1/customers")
        assert missing.status_code == 401
        assert missing.json()["error"]["type"] == "authentication_error"
        wrong = await client.get("/v1/customers", headers={"Authorization": "Bearer sk_test_wrong"})
        assert wrong.status_code == 401
        publishable = await client.get("/v1/customers", headers={"Authorization": f"Bearer {merchant.publishable}"})
        assert publishable.status_code == 401
    async with platform.client(reader) as client:
        assert (await client.get("/v1/customers")).status_code == 200
        denied = await client.post("/v1/customers", json={})
        assert denied.status_code == 403
        assert denied.json()["error"]["type"] == "permission_error"


async def test_the_email_filter_returns_the_match_only(platform: Platform, merchant: Credentials) -> None:
    wanted = await platform.create_customer(merchant, email="ada@example.com")
    await platform.create_customer(merchant, email="grace@example.com")
    await platform.create_customer(merchant)
    async with platform.client(merchant) as client:
        listed = (await client.get("/v1/customers", params={"email": "ada@example.com"})).json()["data"]
        nobody = (await client.get("/v1/customers", params={"email": "nobody@example.com"})).json()["data"]
    assert listed == [wanted]
    assert nobody == []
