"""The OpenAPI schema tells the truth: schemathesis generates requests for every operation from the
gateway's own schema, valid ones and ones that break it (negative mode, which must meet the
declared 422), sends them over loopback with an admin key, and checks each answer: no 5xx, a
status code the schema declares for that route, the declared content type, and a body that fits
the declared model. Bounded (a few examples per operation, derandomized) so that it runs in
``make test``; ``FUZZ_EXAMPLES`` raises the bound for a longer run.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import Gateway

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def fuzz(spec: dict[str, Any], base_url: str, headers: dict[str, str]) -> tuple[int, list[str]]:
    """Every operation, ``EXAMPLES`` generated cases each; the operations and their failures."""
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in GenerationMode:
            failures.extend(examine(operation, mode, base_url, headers))
    return operations, failures


def examine(operation: Any, mode: GenerationMode, base_url: str, headers: dict[str, str]) -> list[str]:
    """``EXAMPLES`` cases of one operation in one mode; what went wrong, if anything."""

    @hypothesis.settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(mode))
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    try:
        check()
    except hypothesis.errors.Unsatisfiable:
        return []  # nothing to break: the operation takes no input the schema constrains
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure, reported together
        return [f"{operation.label} ({mode.value}): {str(exc)[:600]}"]
    return []


@pytest.mark.timeout(600)
async def test_every_answer_agrees_with_the_openapi_schema(gateway: Gateway) -> None:
    """No generated request gets a 5xx or an answer the schema does not declare."""
    spec = (await gateway.http.get("/openapi.json")).json()
    headers = {"Authorization": gateway.http.headers["Authorization"]}
    operations, failures = await asyncio.to_thread(fuzz, spec, str(gateway.http.base_url), headers)
    assert operations >= 35, operations
    assert failures == [], "\n\n".join(failures)
