"""Schemathesis over the whole OpenAPI document of a real `bastion api` process: every
operation, with valid and with invalid inputs, must answer without a 5xx and exactly as
documented (status code, content type, body).

The operations are read from the served document at run time, so a new route is covered
without touching this file. (schemathesis' own lazy pytest loader does not run on
pytest 9.2, hence the explicit loop over operations.)
"""

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support import postgres
from tests.support.platform import Credentials, Platform

EXAMPLES_PER_OPERATION_MAX = 15
REQUEST_TIMEOUT_S = 10
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
async def schemathesis_merchant(platform: Platform) -> Credentials:
    return await platform.merchant()


@pytest.fixture(scope="module")
def api_schema(test_database: postgres.TestDatabase) -> Iterator[schemathesis.BaseSchema]:
    with postgres.running_api(test_database) as url:
        yield schemathesis.openapi.from_url(f"{url}/openapi.json", timeout=REQUEST_TIMEOUT_S)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi(
    api_schema: schemathesis.BaseSchema, schemathesis_merchant: Credentials, mode: schemathesis.GenerationMode
) -> None:
    failures: dict[str, str] = {}
    labels: list[str] = []
    for result in api_schema.get_all_operations():
        if isinstance(result, Err):
            failures[result.err().label] = f"invalid OpenAPI definition: {result.err()}"
            continue
        operation = result.ok()
        labels.append(operation.label)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION_MAX,
            deadline=None,
            derandomize=True,
            # No shrinking: each step is a real request, and the report already names the failing case.
            phases=[Phase.explicit, Phase.generate],
            # Response times depend on a shared machine and database, not on the generated data.
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def exercise(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=schemathesis_merchant.headers, checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

        try:
            exercise()
        except Unsatisfiable:
            # Only an operation without inputs (GET /healthz) has no invalid request to send.
            if mode is schemathesis.GenerationMode.POSITIVE or _takes_input(operation):
                failures[operation.label] = f"no {mode.value} request could be generated"
        # Schemathesis raises its check failures as an exception group, not an Exception.
        except (Exception, BaseExceptionGroup) as error:  # noqa: BLE001  (collect every operation's failure, report all)
            failures[operation.label] = str(error)
    assert "POST /v1/customers" in labels, labels
    assert not failures, "\n\n".join(f"{label}:\n{message}" for label, message in failures.items())


def _takes_input(operation: "schemathesis.APIOperation[Any, Any, Any, Any]") -> bool:
    """Whether the operation has a parameter (path, query, header, cookie) or a request body."""
    return any(True for _ in operation.iter_parameters()) or bool(operation.get_request_payload_content_types())
