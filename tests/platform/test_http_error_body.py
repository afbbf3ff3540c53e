"""Every error answers the body the routes document (ADR 11); `results` only on a rejected batch."""

from typing import Any

import orjson
import pytest
from fastapi import APIRouter

from bastion.platform.http.errors import error_response
from bastion.platform.http.schemas import ErrorBody, ErrorDetail, documented
from bastion.platform.logging import request_id_var
from tests.support.resources import check_resource, documented_properties

router = APIRouter()


@router.post("/example", responses=documented(dict[str, str], writes=True))
async def example() -> None:
    """A route documented like every route of the API."""


@pytest.mark.parametrize("results", [None, [{"index": 0, "code": "parameter_invalid"}]])
def test_error_body(results: list[dict[str, Any]] | None) -> None:
    token = request_id_var.set("req_0000000000000000000000000001")
    try:
        response = error_response(400, type_="invalid_request_error", code="parameter_invalid", message="No", results=results)
    finally:
        request_id_var.reset(token)
    body = orjson.loads(response.body)
    published = documented_properties(router)
    check_resource(ErrorBody, body, published["ErrorBody"])
    expected = [key for key in published["ErrorDetail"] if results is not None or key != "results"]
    check_resource(ErrorDetail, body["error"], expected)
    assert body["error"]["request_id"] == "req_0000000000000000000000000001"
