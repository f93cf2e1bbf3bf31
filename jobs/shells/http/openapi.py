"""The OpenAPI document: FastAPI's, plus the JobDefinition schema the POST body is checked against,
this deployment's examples, and problem documents for every error."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from jobs.shells.http.auth import COMPONENTS
from jobs.shells.http.errors import PROBLEM_MEDIA_TYPE
from jobs.spec import Config, JobDefinition


def example_job(config: Config) -> dict[str, Any]:
    """A job definition this deployment accepts: every profile of a segment, all fields."""
    destination = config.destination_datasets[0]
    return {
        "filter": {"segments": [{"segmentId": "segment-01", "segmentNs": "ups", "status": ["realized"]}]},
        "destination": {"datasetId": destination.id, "segmentPerBatch": False},
        "schema": {"name": destination.schema_name},
    }


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, plus the JobDefinition schema the POST body is checked against,
    this deployment's examples, and problem documents for every error."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc["components"]["schemas"]
        definition = JobDefinition.model_json_schema(by_alias=True, ref_template=COMPONENTS + "{model}")
        schemas.update(definition.pop("$defs", {}))
        schemas["JobDefinition"] = definition
        example = example_job(app.state.config)
        examples = {"/export/jobs": example, "/config/schedules": {"cron": "0 * * * *", "incremental": True,
                                                                   "job": example}}
        for path, body in examples.items():
            doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"] = body
        # Parameter errors are 400 problem documents here, never FastAPI's 422 HTTPValidationError.
        for operation in (op for item in doc["paths"].values() for op in item.values()):
            # FastAPI lists each security dependency as an alternative; both are required (the probes
            # take none).
            if "security" in operation:
                operation["security"] = [{k: v for req in operation["security"] for k, v in req.items()}]
            responses = operation["responses"]
            if "HTTPValidationError" in str(responses.get("422")):
                del responses["422"]
            for code, response in responses.items():
                if int(code) >= 400 and "content" in response:  # /readyz's 503 is its own body
                    response["content"] = {PROBLEM_MEDIA_TYPE: response["content"]["application/json"]}
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema
