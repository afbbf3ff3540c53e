"""Deny by default: every route of the real app needs a scope unless it is public, the
app refuses to build otherwise, and each guarded route answers 401 without a key and
403 with a key that lacks its scope."""

import re

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import PlainTextResponse

from bastion.api import app as app_module
from bastion.api.app import PUBLIC_PATHS, create_app, route_scope, served_routes, unguarded_routes
from bastion.kernel.errors import ConfigurationError
from bastion.merchants import SCOPES
from tests.support.platform import Credentials, Platform

# Authentication must answer before anything looks at a path parameter, even a malformed one.
_PLACEHOLDER = "not-an-id"


def _guarded(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, concrete path, scope) of every route that needs a scope."""
    guarded: list[tuple[str, str, str]] = []
    for context in served_routes(app):
        route = context.original_route
        if isinstance(route, APIRoute) and (scope := route_scope(route)) is not None:
            path = re.sub(r"\{\w+\}", _PLACEHOLDER, str(context.path))
            guarded.extend((method, path, scope) for method in sorted(route.methods or ()))
    return guarded


async def _ok() -> PlainTextResponse:
    return PlainTextResponse("unguarded")


def test_every_route_is_scoped_or_public(platform: Platform) -> None:
    seen: set[str] = set()
    for context in served_routes(platform.app):
        route = context.original_route
        path = str(context.path)
        seen.add(path)
        if path in PUBLIC_PATHS:
            continue
        assert isinstance(route, APIRoute), f"{path} is a {type(route).__name__}: only API routes can carry a scope"
        scope = route_scope(route)
        assert scope is not None, f"{sorted(route.methods or ())} {path} has no scope and is not public"
        assert scope in SCOPES, f"{path} requires {scope!r}, which no API key can hold"
    # The walk must reach into the included routers, else the checks above prove nothing.
    assert {"/v1/customers", "/v1/customers/{customer_id}", "/v1/events", "/v1/events/{event_id}", "/healthz"} <= seen
    assert unguarded_routes(platform.app) == []


def test_unguarded_routes_are_found_wherever_they_hide(platform: Platform) -> None:
    app = create_app(platform.services)
    assert unguarded_routes(app) == []

    router = APIRouter(prefix="/v1/leaky")
    router.add_api_route("", _ok, methods=["GET"])
    app.include_router(router)
    app.add_api_route("/v1/plain-api", _ok, methods=["POST"])

    async def plain(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("plain")

    app.add_route("/v1/starlette", plain, methods=["GET"])
    assert set(unguarded_routes(app)) == {"['GET'] /v1/leaky", "['POST'] /v1/plain-api", "['GET', 'HEAD'] /v1/starlette"}


def test_create_app_refuses_an_unguarded_route(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    # A router the factory includes gains a route without a scope; monkeypatch undoes it.
    leaky = APIRouter(prefix="/v1/leaky")
    leaky.add_api_route("", _ok, methods=["GET"])
    monkeypatch.setattr(app_module, "events_router", leaky)
    with pytest.raises(ConfigurationError, match=re.escape("['GET'] /v1/leaky")):
        create_app(platform.services)


async def test_no_key_is_401_on_every_guarded_route(platform: Platform) -> None:
    guarded = _guarded(platform.app)
    assert guarded
    async with platform.client() as client:
        for method, path, _scope in guarded:
            for headers in ({}, {"Authorization": "Bearer sk_test_unknown"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
                response = await client.request(method, path, headers=headers, json={} if method == "POST" else None)
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.json()["error"]["type"] == "authentication_error"


async def test_key_without_the_scope_is_403_on_every_guarded_route(platform: Platform, merchant: Credentials) -> None:
    guarded = _guarded(platform.app)
    keys = {scope: await platform.api_key(merchant.merchant_id, scopes=sorted(SCOPES - {scope})) for scope in SCOPES}
    async with platform.client() as client:
        for method, path, scope in guarded:
            response = await client.request(
                method, path, headers=keys[scope].headers, json={"name": "probe"} if method == "POST" else None
            )
            assert response.status_code == 403, (method, path, response.text)
            error = response.json()["error"]
            assert error["type"] == "permission_error"
            assert scope in error["message"]
    async with platform.client(merchant) as client:
        listed = (await client.get("/v1/customers")).json()["data"]
    assert listed == [], "a denied request must write nothing"
