"""`export-jobs explain`: what a job would read and do, from its plan, without Spark and without writing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobs.planner.plan import ExportPlan
from jobs.spec import merge_leaves


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def explain_plan(plan: ExportPlan, versions: Mapping[str, int | None]) -> dict[str, Any]:
    """The plan as a user reads it: the datasets and Delta versions it reads, the merge, the filters,
    the fields, the destination and the steps of its one Spark pass. `versions`: each dataset's
    version now (what a first run would fix for all its runs), unless the plan fixed them already."""

    def read(source: Any) -> dict[str, Any]:
        version = source.version if source.version is not None else versions.get(source.dataset_id)
        return {"datasetId": source.dataset_id, "path": source.path, "version": version}

    profiles = [dict(read(s), precedence=s.precedence) for s in plan.sources]
    events = [read(s) for s in plan.events.sources] if plan.events is not None else []
    graph = "pdg" if plan.stitching is not None else "none"
    segments = [{"segmentNs": s.namespace, "segmentId": s.segment_id, "status": list(s.statuses)}
                for s in plan.segments]
    steps = [f"read {len(profiles)} profile dataset(s)" + (f" and {len(events)} event dataset(s)" if events else "")
             + " in one scan each"]
    if plan.stitching is not None:
        steps.append("build the identity graph from every fragment and event; key each record by its component")
    steps.append(f"merge fragments into profiles ({plan.merge}), one shuffle by profile key")
    if plan.evaluation is not None:
        steps.append(f"evaluate {len(plan.evaluation.segments)} segment definition(s) in the same pass")
    steps.append(f"keep the members of {len(segments)} segment(s)" if segments else "keep every profile")
    if plan.consent:
        steps.append(f"keep the profiles {len(plan.consent)} consent policy(ies) allow, counting the others")
    fields = [".".join(leaf.path) for leaf in merge_leaves(plan.projection)]
    steps.append(f"project {len(fields)} field(s)" + (", and the events" if plan.events and
                                                           plan.events.projection else ""))
    batches = len(plan.batch_ids)
    steps.append(f"write {batches} batch(es) to the destination in one Delta commit")
    if plan.evaluation is not None:
        steps.append("write the changed memberships back in one more Delta commit")
    return {
        "reads": {"profiles": profiles, "events": events},
        "merge": {"attributeMerge": plan.merge, "identityGraph": graph},
        "filter": {
            "segments": segments,
            "segmentQualificationTime": {"startTime": _time(plan.qualified_from), "endTime": _time(plan.qualified_to)},
            "fromIngestTimestamp": _time(plan.from_ingest),
            "consent": [rule.policy.to_dict() for rule in plan.consent],
        },
        "evaluation": None if plan.evaluation is None else {
            "segments": [s.segment_id for s in plan.evaluation.segments],
            "writesBackTo": plan.evaluation.writeback_path,
        },
        "fields": fields,
        "events": None if plan.events is None or plan.events.projection is None else {
            "fields": [n.name for n in plan.events.projection],
            "fromIngestTimestamp": _time(plan.events.from_ingest),
            "toIngestTimestamp": _time(plan.events.to_ingest),
        },
        "destination": {"path": plan.destination_path, "segmentPerBatch": plan.per_segment, "batches": batches},
        "steps": steps,
    }
