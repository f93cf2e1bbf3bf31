"""Schemathesis against the live server: requests generated from /openapi.json, valid and
invalid, never get a 5xx, and every answer matches the document (status, content type, schema).

Driven through schemathesis' Python API and hypothesis directly: its pytest fixture loader
(`schemathesis.pytest.from_fixture`) does not work with pytest 9.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import auth

OPERATIONS = [("GET", "/export/jobs"), ("POST", "/export/jobs"),
              ("GET", "/export/jobs/{id}"), ("DELETE", "/export/jobs/{id}"), ("POST", "/export/jobs/{id}/replay"),
              ("GET", "/segment/definitions"), ("POST", "/segment/definitions"),
              ("GET", "/segment/definitions/{id}"), ("PATCH", "/segment/definitions/{id}"),
              ("DELETE", "/segment/definitions/{id}"), ("POST", "/segment/definitions/validate"),
              ("GET", "/config/schedules"), ("POST", "/config/schedules"),
              ("GET", "/config/schedules/{id}"), ("DELETE", "/config/schedules/{id}"),
              ("PATCH", "/config/schedules/{id}"), ("GET", "/config/schedules/{id}/next-runs"),
              ("GET", "/privacy/jobs"), ("POST", "/privacy/jobs"), ("GET", "/privacy/jobs/{jobId}"),
              ("GET", "/privacy/jobs/{jobId}/document"),
              ("POST", "/preview"), ("GET", "/preview/{previewId}"), ("DELETE", "/preview/{previewId}"),
              ("GET", "/estimate/{previewId}"),
              ("GET", "/segment/jobs"), ("POST", "/segment/jobs"), ("GET", "/segment/jobs/{id}"),
              ("DELETE", "/segment/jobs/{id}"), ("POST", "/segment/jobs/bulk-get"),
              ("GET", "/webhooks/deliveries"),
              ("GET", "/healthz"), ("GET", "/readyz")]
PROBES = ("/healthz", "/readyz")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="session")
def api_schema(base_url):
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


def test_the_document_has_the_operations_security_headers_and_job_definition(api_schema, client):
    assert {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()} == set(OPERATIONS)
    doc = client.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"].keys() == {"BearerToken", "ApiKey"}
    create = doc["paths"]["/export/jobs"]["post"]
    assert create["security"] == [{"BearerToken": [], "ApiKey": []}]
    assert {"x-gw-ims-org-id", "x-sandbox-name"} <= {p["name"] for p in create["parameters"]}
    body_schema = create["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema == {"$ref": "#/components/schemas/JobDefinition"}
    assert doc["components"]["schemas"]["JobDefinition"]["additionalProperties"] is False


def test_the_documented_example_creates_a_job(client):
    doc = client.get("/openapi.json").json()
    example = doc["paths"]["/export/jobs"]["post"]["requestBody"]["content"]["application/json"]["example"]
    response = client.post("/export/jobs", json=example, headers=auth())
    assert response.status_code == 200 and response.json()["status"] == "NEW"


@pytest.mark.parametrize("method, path, mode", [
    (method, path, mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) for method, path in OPERATIONS
    if mode is GenerationMode.POSITIVE or path not in PROBES])  # a probe has no input to get wrong
def test_generated_requests_get_no_server_error(api_schema, method, path, mode):
    operation = api_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def call(case):
        # Valid credentials for orgA/prod, so that requests get past authentication.
        case.call_and_validate(headers=auth(), checks=CHECKS)

    call()


def _segment(value: str) -> dict:
    return {"name": "n", "expression": {"type": "PQL", "format": "pql/text", "value": value},
            "schema": {"name": "_xdm.context.profile"}}


HOSTILE_BODIES = {
    "deep JSON": b"[" * 200_000 + b"]" * 200_000,
    "deep JSON in a field": b'{"fields": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "over 1 MiB": b'{"fields": "' + b"a" * (1 << 20) + b'"}',
    "a huge number": json.dumps(_segment("loyalty.points > " + "9" * 5000)).encode(),
    "deep PQL": json.dumps(_segment("not(" * 20_000 + "vip" + ")" * 20_000)).encode(),
    "a long PQL list": json.dumps(_segment("loyalty.tier in [" + ", ".join(['"x"'] * 60_000) + "]")).encode(),
    "20,000 segments": json.dumps({"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"},
                                   "filter": {"segments": [{"segmentId": f"s{i}"} for i in range(20_000)]}}).encode(),
}


@pytest.mark.parametrize("name", HOSTILE_BODIES)
@pytest.mark.parametrize("method, path", [("POST", "/export/jobs"), ("POST", "/segment/definitions"),
                                          ("POST", "/config/schedules"), ("POST", "/privacy/jobs"),
                                          ("POST", "/preview"), ("POST", "/segment/jobs"),
                                          ("POST", "/segment/definitions/validate")])
def test_huge_and_deep_bodies_get_a_4xx_naming_the_problem(client, method, path, name):
    response = client.request(method, path, content=HOSTILE_BODIES[name],
                              headers={**auth(), "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["errors"]
