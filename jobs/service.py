"""Job operations shared by the shells (CLI, HTTP API, spark-submit): no argv, no HTTP."""

from __future__ import annotations

import time
import uuid
from typing import Any

from jobs.config import Config
from jobs.model import (
    Batch,
    JobDefinition,
    JobRecord,
    JobStatus,
    RecordDestination,
    dump_definition_part,
    parse_definition,
)
from jobs.plan import check_definition
from jobs.store import JobStore


def now_ms() -> int:
    return int(time.time() * 1000)


def new_batch_id() -> str:
    return uuid.uuid4().hex


def new_record(
    definition: JobDefinition,
    config: Config,
    job_id: int,
    org: str,
    sandbox: str,
    request_id: str,
    created_ms: int,
) -> JobRecord:
    """The NEW record for a definition: defaults filled in, batch ids assigned."""
    policy = definition.merge_policy
    if policy is None:
        default = config.default_policy()
        policy_dump = {"id": default.id, "version": default.version}
    else:
        policy_dump = dump_definition_part(policy)
    dest = definition.destination
    if dest.segment_per_batch:
        destination = RecordDestination(
            dataset_id=dest.dataset_id,
            segment_per_batch=True,
            batches=[
                Batch(segment_id=s.segment_id, segment_ns=s.segment_ns, status=s.status,
                      batch_id=new_batch_id())
                for s in definition.filter.segments or ()
            ],
        )
    else:
        destination = RecordDestination(
            dataset_id=dest.dataset_id, segment_per_batch=False, batch_id=new_batch_id()
        )
    return JobRecord(
        id=job_id,
        ims_org_id=org,
        sandbox_name=sandbox,
        status=JobStatus.NEW,
        fields=definition.fields,
        schema={"name": definition.schema_.name},
        filter=dump_definition_part(definition.filter),
        additional_fields=dump_definition_part(definition.additional_fields),
        merge_policy=policy_dump,
        evaluation_info=dump_definition_part(definition.evaluation_info),
        destination=destination,
        creation_time=created_ms,
        update_time=created_ms,
        request_id=request_id,
    )


def create_job(
    store: JobStore,
    config: Config,
    body: str | bytes | dict[str, Any],
    org: str,
    sandbox: str,
    request_id: str | None = None,
) -> JobRecord:
    """Validate a create request against the config and the lake, then store it as NEW.

    Raises RequestRejected (nothing written) when the request is bad.
    """
    definition = parse_definition(body)
    check_definition(definition, config)
    request_id = request_id or str(uuid.uuid4())
    created = now_ms()
    return store.create(
        lambda job_id: new_record(definition, config, job_id, org, sandbox, request_id, created)
    )
