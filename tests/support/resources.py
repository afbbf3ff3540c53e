"""What the unit tests of each context's resources check a builder's answer against: its
TypedDict, and the OpenAPI document its routes publish (ADR 11)."""

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import TypeAdapter


def documented_properties(router: APIRouter) -> dict[str, list[str]]:
    """The property names, in order, of every component schema the routes of `router` publish."""
    app = FastAPI()
    app.include_router(router)
    schemas = app.openapi()["components"]["schemas"]
    return {name: list(schema.get("properties", {})) for name, schema in schemas.items()}


def check_resource(resource: Any, result: Mapping[str, Any], properties: list[str]) -> None:
    """`result` validates strictly against the TypedDict `resource` and has exactly the
    documented `properties`, in their order (the order of the keys on the wire)."""
    TypeAdapter(resource).validate_python(result, strict=True)
    assert list(result) == properties, f"built {list(result)}, documented {properties}"
