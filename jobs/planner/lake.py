"""The lake as a job sees it: the datasets a merge policy reads, and their merged Delta schemas
(read with delta-rs, no JVM)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jobs.planner.plan import EventSource, ProfileSource
from jobs.spec import (
    Config,
    LakeError,
    MergePolicy,
    SchemaConflict,
    input_shape_problems,
    pql,
    read_delta_schema,
    union_schemas,
)


def profile_sources(policy: MergePolicy, config: Config) -> list[ProfileSource]:
    """The policy's profile datasets, and the segmentation dataset under every policy.

    The segmentation dataset holds only memberships that evaluation wrote: under
    dataSetPrecedence it ranks above the policy's order (its fragments, compared with
    each other by ingest time, are the evaluated state of the segments they name).
    """
    segmentation = config.segmentation_dataset
    if policy.attribute_merge == "dataSetPrecedence":
        by_id = {d.id: d for d in config.profile_datasets}
        sources = [ProfileSource(i, config.resolve(by_id[i].path), n) for n, i in enumerate(policy.order)]
        if segmentation is not None:
            sources.append(ProfileSource(segmentation, config.resolve(by_id[segmentation].path), -1, optional=True))
        return sources
    return [ProfileSource(d.id, config.resolve(d.path), 0, optional=d.id == segmentation)
            for d in config.profile_datasets]


def merged_schema(kind: str, sources: list[ProfileSource] | list[EventSource]) -> dict[str, Any]:
    """The union of the sources' Delta schemas; `kind` is "profile" or "event"."""
    schemas = []
    for source in sources:
        schema = read_delta_schema(source.path)
        if schema is None:
            if isinstance(source, ProfileSource) and source.optional:
                continue
            raise LakeError(f"{kind} dataset {source.dataset_id!r} has no Delta table at the path the config "
                            "gives it")
        problems = input_shape_problems(kind, schema)
        if problems:
            raise LakeError(f"{kind} dataset {source.dataset_id!r} does not have the system columns a {kind} table "
                            f"needs: it {'; it '.join(problems)} (docs/reference/your-lake.md#the-tables)")
        schemas.append((source.dataset_id, schema))
    try:
        return union_schemas(schemas)
    except SchemaConflict as err:
        raise LakeError(f"{kind} datasets disagree on a column type: {err}") from None


def fragment_count(sources: list[ProfileSource]) -> int | None:
    """The rows of the sources' Delta tables, from their logs' file statistics (no data is read);
    None when a file has no row count. A missing optional source counts 0."""
    from deltalake import DeltaTable

    total = 0
    for source in sources:
        if not DeltaTable.is_deltatable(source.path):
            continue
        counts = DeltaTable(source.path).get_add_actions(flatten=True).column("num_records").to_pylist()
        if any(n is None for n in counts):
            return None
        total += sum(counts)
    return total


def input_versions(config: Config) -> dict[str, int | None]:
    """The current Delta version of every profile and event dataset (None: no table yet), which a
    job's first run fixes for all its runs (JobRecord.inputs)."""
    from deltalake import DeltaTable

    versions: dict[str, int | None] = {}
    for dataset in [*config.profile_datasets, *config.event_datasets]:
        path = config.resolve(dataset.path)
        versions[dataset.id] = DeltaTable(path).version() if DeltaTable.is_deltatable(path) else None
    return versions


def gone_versions(config: Config, versions: Mapping[str, int | None]) -> list[str]:
    """Why each dataset version of `versions` can no longer be read, if it cannot: its log or its
    files were removed by retention (Delta's log retention, VACUUM). One message per dataset, naming
    its id, path and version; none when every version is whole. Files are checked on local paths only."""
    from deltalake import DeltaTable

    gone = []
    for dataset in [*config.profile_datasets, *config.event_datasets]:
        version = versions.get(dataset.id)
        if version is None:
            continue
        path = config.resolve(dataset.path)
        try:
            table = DeltaTable(path, version=version)
        except Exception as err:  # delta-rs raises several types for a log it cannot read at a version
            gone.append(f"dataset {dataset.id} ({path}) no longer has version {version}: its log cannot be "
                        f"read at that version ({str(err).splitlines()[0]})")
            continue
        if "://" in path and not path.startswith("file://"):
            continue
        files = table.file_uris()
        missing = [uri for uri in files if not Path(uri.removeprefix("file://")).exists()]
        if missing:
            gone.append(f"dataset {dataset.id} ({path}) no longer has version {version}: {len(missing)} of its "
                        f"{len(files)} files were removed (VACUUM), e.g. {missing[0]}")
    return gone


def member_segments(config: Config) -> frozenset[tuple[str, str]]:
    """Every (segment namespace, segment id) some profile fragment of the config's profile datasets
    has a membership of, in any status: for the create-time warning about segment ids nothing knows.

    Reads only the `segmentMembership` column with delta-rs (about 0.3 s per 200,000 fragments
    here), once per dataset version in a process: a server's repeated creates reuse it.
    """
    from deltalake import DeltaTable

    found: set[tuple[str, str]] = set()
    for dataset in config.profile_datasets:
        path = config.resolve(dataset.path)
        if DeltaTable.is_deltatable(path):
            found |= _members_at(path, DeltaTable(path).version())
    return frozenset(found)


@lru_cache(maxsize=64)
def _members_at(path: str, version: int) -> frozenset[tuple[str, str]]:
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(path, version=version)
    if "segmentMembership" not in {f.name for f in table.schema().fields}:
        return frozenset()
    found: set[tuple[str, str]] = set()
    for batch in table.to_pyarrow_dataset().to_batches(columns=["segmentMembership"]):
        namespaces = _entries(batch.column(0))  # one per (fragment, namespace): key, inner map
        segments = _as_list(namespaces.field(1))
        pairs = pa.table({"ns": namespaces.field(0).take(pc.list_parent_indices(segments)),
                          "segment": pc.list_flatten(segments).field(0)})
        found.update((r["ns"], r["segment"]) for r in pairs.group_by(["ns", "segment"]).aggregate([]).to_pylist())
    return frozenset(found)


def _as_list(maps: Any) -> Any:
    """A map array as list<struct<key, value>>, which Arrow's list kernels take (and slice right)."""
    import pyarrow as pa

    return maps.cast(pa.list_(pa.struct([maps.type.key_field, maps.type.item_field])))


def _entries(maps: Any) -> Any:
    import pyarrow.compute as pc

    return pc.list_flatten(_as_list(maps))


def event_sources(config: Config) -> list[EventSource]:
    return [EventSource(d.id, config.resolve(d.path)) for d in config.event_datasets]


@dataclass(frozen=True)
class Schemas:
    """What segment expressions are checked against: a policy's merged profile schema and the
    merged event schema (None without event datasets)."""

    profile: dict[str, Any]
    events: dict[str, Any] | None

    @classmethod
    def of(cls, policy: MergePolicy, config: Config) -> Schemas:
        events = merged_schema("event", event_sources(config)) if config.event_datasets else None
        return cls(merged_schema("profile", profile_sources(policy, config)), events)

    def checked(self, text: str, segments: set[str] | None = None) -> tuple[pql.Expr, pql.Needs]:
        """A definition's expression, parsed and checked; raises PqlError."""
        expr = pql.parse(text)
        return expr, pql.check(text, expr, self.profile, self.events, segments)
