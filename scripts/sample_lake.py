"""A deterministic sample lake, generated in Spark (so it scales to millions of profiles).

The demo, the tests and the benchmark all use it. Every value derives from a hash
of (seed, profile, fragment), so the same knobs always give the same lake.
`empty_deployment` writes the same datasets as empty tables with deltalake, no
Spark: enough for whatever reads only schemas (job creation, the HTTP API).

Profile dataset 0 holds every profile; each later dataset holds about half of
them again, ingested later and with other attribute columns, so that merges and
the union of schemas have work to do. Segment ids are `segment-01` … in the
`ups` namespace; profile keys are `ECID` identities.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import write_deltalake

from jobs.spec import Config, load_config

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

NAMESPACES = ("ECID", "Email", "CRMID", "Phone", "GAID")
STATUSES = ("realized", "existing", "exited")
BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)
SEGMENTATION_DATASET = "segment_memberships"


@dataclass(frozen=True)
class LakeSpec:
    profiles: int = 1000
    namespaces: int = 3  # identity namespaces a profile may have, ECID first
    segments: int = 5
    max_memberships: int = 3  # per fragment, 0..max
    events_per_profile: int = 2
    fragments_per_profile: int = 1  # in profile dataset 0
    bad_fragments: int = 0  # fragments with no primary identity, to be rejected
    empty_profiles: int = 0  # keys with events (in event dataset 0) but no profile fragment
    # People whose 2-4 identities are spread over their fragments, two per fragment (a link of
    # a chain), each fragment's first identity its primary: one profile under identityGraph
    # pdg, several under none.
    linked_share: float = 0.0
    # None: every event carries all of its person's identities; a share: that many events carry
    # two (ECID and Email), the others only ECID.
    linked_events: float | None = None
    # Fragments carry XDM email-marketing consent (consents.marketing.email.val: y, dy, n or none);
    # the later dataset's fragments often withdraw it.
    consents: bool = False
    seed: int = 42


def segment_id(index: int) -> str:
    return f"segment-{index + 1:02d}"


def _rand(seed: int, *parts: Column) -> Column:
    """A uniform double in [0, 1) from a hash of the parts."""
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(seed), *parts)
    return (F.abs(h % F.lit(1_000_003)) / F.lit(1_000_003.0)).cast("double")


def _identity_map(spec: LakeSpec, pid: Column, primary: bool = True) -> Column:
    from pyspark.sql import functions as F

    entries = [
        F.struct(F.lit("ECID").alias("key"), F.array(F.struct(
            F.concat(F.lit("ecid-"), pid.cast("string")).alias("id"),
            F.lit(primary).alias("primary"),
        )).alias("value"))
    ]
    for n, ns in enumerate(NAMESPACES[1:spec.namespaces], start=1):
        present = _rand(spec.seed, F.lit(f"ns{n}"), pid) < F.lit(0.8 - 0.2 * n)
        entries.append(F.when(present, F.struct(F.lit(ns).alias("key"), F.array(F.struct(
            F.concat(F.lit(ns.lower() + "-"), pid.cast("string")).alias("id"),
            F.lit(False).alias("primary"),
        )).alias("value"))))
    return F.map_from_entries(F.filter(F.array(*entries), lambda e: e.isNotNull()))


def _linked_identity_map(spec: LakeSpec, pid: Column, salt: Column) -> Column:
    """One fragment of a linked person: two consecutive identities of the person's 2-4, the first primary."""
    from pyspark.sql import functions as F

    count = (F.floor(_rand(spec.seed, F.lit("linked"), pid) * 3) + 2).cast("int")
    first = (salt % (count - 1)).cast("int")
    ids = F.array(*[F.struct(F.lit(ns).alias("ns"), F.concat(F.lit(ns.lower() + "-"), pid.cast("string")).alias("id"))
                    for ns in NAMESPACES[:4]])
    one, two = F.element_at(ids, first + 1), F.element_at(ids, first + 2)
    entry = "array<struct<id: string, primary: boolean>>"
    return F.map_from_arrays(
        F.array(one["ns"], two["ns"]),
        F.array(F.array(F.struct(one["id"].alias("id"), F.lit(True).alias("primary"))).cast(entry),
                F.array(F.struct(two["id"].alias("id"), F.lit(False).alias("primary"))).cast(entry)),
    )


def _event_identity_map(spec: LakeSpec, pid: Column, event: Column) -> Column:
    """An event's identities: all of its person's, or (linked_events) ECID and, for some, Email too."""
    from pyspark.sql import functions as F

    if spec.linked_events is None:
        return _identity_map(spec, pid)
    ecid = F.array(F.struct(F.concat(F.lit("ecid-"), pid.cast("string")).alias("id"), F.lit(True).alias("primary")))
    email = F.array(F.struct(F.concat(F.lit("email-"), pid.cast("string")).alias("id"),
                             F.lit(False).alias("primary")))
    linked = _rand(spec.seed, F.lit("event-link"), event) < F.lit(spec.linked_events)
    return F.when(linked, F.map_from_arrays(F.array(F.lit("ECID"), F.lit("Email")), F.array(ecid, email))) \
        .otherwise(F.create_map(F.lit("ECID"), ecid))


def _memberships(spec: LakeSpec, pid: Column, salt: Column, ingest: Column) -> Column:
    from pyspark.sql import functions as F

    count = F.floor(_rand(spec.seed, F.lit("m"), salt, pid) * (spec.max_memberships + 1))
    count = F.least(count, F.lit(spec.segments))
    first = F.floor(_rand(spec.seed, F.lit("s"), salt, pid) * spec.segments)
    entries = []
    for i in range(min(spec.max_memberships, spec.segments)):
        index = ((first + i) % spec.segments).cast("int")
        status_pick = F.floor(_rand(spec.seed, F.lit(f"st{i}"), salt, pid) * 3).cast("int")
        seconds = F.floor(_rand(spec.seed, F.lit(f"q{i}"), salt, pid) * 86400 * 60).cast("long")
        entries.append(F.when(F.lit(i) < count, F.struct(
            F.format_string("segment-%02d", index + 1).alias("key"),
            F.struct(
                F.element_at(F.array(*[F.lit(s) for s in STATUSES]), status_pick + 1).alias("status"),
                F.least(ingest, F.timestamp_seconds(F.lit(int(BASE_TIME.timestamp())) + seconds))
                .alias("lastQualificationTime"),
            ).alias("value"),
        )))
    inner = F.map_from_entries(F.filter(F.array(*entries), lambda e: e.isNotNull()))
    return F.when(count > 0, F.create_map(F.lit("ups"), inner))


def profile_fragments(spark: SparkSession, spec: LakeSpec, dataset_index: int) -> DataFrame:
    """The fragments of profile dataset `dataset_index` as a DataFrame."""
    from pyspark.sql import functions as F

    frags = spec.fragments_per_profile if dataset_index == 0 else 1
    df = spark.range(spec.profiles).withColumnRenamed("id", "pid")
    if dataset_index > 0:
        df = df.where(_rand(spec.seed, F.lit(f"d{dataset_index}"), F.col("pid")) < 0.5)
    df = df.withColumn("frag", F.explode(F.sequence(F.lit(0), F.lit(frags - 1))))
    pid, salt = F.col("pid"), F.col("frag") + dataset_index * 100
    offset = (
        F.lit(dataset_index * 30 * 86400)
        + F.col("frag") * 86400
        + F.floor(_rand(spec.seed, F.lit("t"), salt, pid) * 86400)
    )
    ingest = F.timestamp_seconds(F.lit(int(BASE_TIME.timestamp()) + 60 * 86400) + offset)
    df = df.select(
        pid.alias("pid"),
        salt.alias("salt"),
        F.when(_rand(spec.seed, F.lit("linked-person"), pid) < F.lit(spec.linked_share),
               _linked_identity_map(spec, pid, salt)).otherwise(_identity_map(spec, pid)).alias("identityMap"),
        ingest.alias("_ingestTime"),
        _memberships(spec, pid, salt, ingest).alias("segmentMembership"),
    )

    def pick(name: str, choices: list[str | None]) -> Column:
        index = F.floor(_rand(spec.seed, F.lit(name), F.col("salt"), F.col("pid")) * len(choices)) + 1
        return F.element_at(F.array(*[F.lit(c) for c in choices]), index.cast("int"))

    email = F.struct(F.concat(F.lit("user"), F.col("pid").cast("string"), F.lit("@example.com")).alias("address"))
    if dataset_index == 0:
        attributes = [
            F.struct(
                F.struct(
                    pick("fn", ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken"]).alias("firstName"),
                    pick("ln", ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", None]).alias("lastName"),
                ).alias("name"),
                (1950 + F.col("pid") % 50).cast("int").alias("birthYear"),
            ).alias("person"),
            # Later fragments of one profile often lack the email: a null must not win.
            F.when(F.col("salt") % 2 == 0, email).alias("personalEmail"),
            F.array(
                *[F.struct(F.concat(F.lit(f"{ns.lower()}-"), F.col("pid").cast("string")).alias("id"),
                           F.lit(ns).alias("namespace")) for ns in ("ECID", "CRMID")],
            ).alias("identities"),
            F.struct(
                pick("city", ["Amsterdam", "Paris", "Lyon", "Utrecht"]).alias("city"),
                pick("cc", ["NL", "FR"]).alias("countryCode"),
            ).alias("homeAddress"),
        ]
    else:
        attributes = [
            email.alias("personalEmail"),
            F.struct(
                (F.col("pid") * 7 % 1000).cast("long").alias("points"),
                pick("tier", ["bronze", "silver", "gold"]).alias("tier"),
            ).alias("loyalty"),
        ]
    if spec.consents:
        choices: list[str | None] = ["y", "y", "dy", "n", None] if dataset_index == 0 else ["y", "n", "n", None]
        attributes.append(F.struct(F.struct(F.struct(pick("consent", choices).alias("val")).alias("email"))
                                   .alias("marketing")).alias("consents"))
    return df.select("identityMap", "_ingestTime", "segmentMembership", *attributes)


def bad_fragments(spark: SparkSession, spec: LakeSpec) -> DataFrame:
    """Fragments with no primary identity: the export must reject and count them."""
    from pyspark.sql import functions as F

    df = spark.range(spec.profiles, spec.profiles + spec.bad_fragments).withColumnRenamed("id", "pid")
    return df.select(
        _identity_map(spec, F.col("pid"), primary=False).alias("identityMap"),
        F.lit(BASE_TIME).cast("timestamp").alias("_ingestTime"),
    )


def events(spark: SparkSession, spec: LakeSpec, dataset_index: int) -> DataFrame:
    from pyspark.sql import functions as F

    per = max(spec.events_per_profile, 1)
    keys = spec.profiles + (spec.empty_profiles if dataset_index == 0 else 0)
    df = spark.range(spec.profiles * spec.events_per_profile)
    if keys > spec.profiles:
        # Empty profiles: keys after the bad fragments' ids, so no fragment has them.
        extra = spark.range((spec.profiles + spec.bad_fragments) * per, (keys + spec.bad_fragments) * per)
        df = df.union(extra)
    pid = (F.col("id") / F.lit(per)).cast("long")

    def r(name: str) -> Column:
        return _rand(spec.seed, F.lit(f"e{dataset_index}{name}"), F.col("id"))

    happened = F.timestamp_seconds(F.lit(int(BASE_TIME.timestamp())) + F.floor(r("t") * 86400 * 90).cast("long"))
    return df.select(
        F.format_string("evt-%d-%d", F.lit(dataset_index), F.col("id")).alias("_id"),
        happened.alias("timestamp"),
        (happened + F.expr("INTERVAL 5 MINUTES")).alias("_ingestTime"),
        _event_identity_map(spec, pid, F.col("id")).alias("identityMap"),
        F.element_at(F.array(F.lit("web.webpagedetails.pageViews"), F.lit("commerce.purchases")),
                     (F.floor(r("k") * 2) + 1).cast("int")).alias("eventType"),
        F.struct(F.struct(F.format_string("https://shop.example.com/p/%d", (r("u") * 100).cast("int"))
                          .alias("URL")).alias("webPageDetails")).alias("web"),
        F.struct(F.struct(F.round(r("p") * 200, 2).alias("priceTotal")).alias("order")).alias("commerce"),
    )


def generate(spark: SparkSession, config: Config, spec: LakeSpec) -> None:
    """Write the config's profile and event datasets (overwriting them); the segmentation
    dataset, if any, is removed."""
    # The segmentation dataset holds what evaluation writes; a fresh lake has none.
    written = [d for d in config.profile_datasets if d.id != config.segmentation_dataset]
    segmentation = config.profile_dataset(config.segmentation_dataset) if config.segmentation_dataset else None
    if segmentation is not None and "://" not in config.resolve(segmentation.path):
        shutil.rmtree(config.resolve(segmentation.path), ignore_errors=True)
    for index, dataset in enumerate(written):
        df = profile_fragments(spark, spec, index)
        if index == 0 and spec.bad_fragments:
            df = df.unionByName(bad_fragments(spark, spec), allowMissingColumns=True)
        _write(df, config.resolve(dataset.path))
    for index, dataset in enumerate(config.event_datasets):
        _write(events(spark, spec, index), config.resolve(dataset.path))


def _write(df: DataFrame, path: str) -> None:
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)


def sample_config(
    lake_root: Path,
    profile_datasets: int = 2,
    event_datasets: int = 1,
    job_table: str = "system/export_jobs",
    destination: str = "exports/audience",
    tenants: Sequence[tuple[str, Sequence[str], str]] = (),
    segmentation: str | None = None,
    owners: Sequence[tuple[str, Sequence[str]]] = (),
) -> str:
    """A config TOML for a sample lake at `lake_root`, as tests and the benchmark use it.

    `tenants` are (org, sandboxes, SHA-256 of the token) for the HTTP API; `segmentation`,
    a path, declares a profile dataset `segment_memberships` there as the segmentation
    dataset (segment evaluation writes to it, so deployments over one lake each need their own);
    `owners`, (org, sandboxes) besides defaultOrg/prod whose data the same tables are too (each
    dataset declared again under the same id, as theirs).
    """
    profile_ids = [f"profiles_{i}" for i in range(profile_datasets)]
    lines = [
        f'lakeRoot = "{lake_root}"',
        f'jobTable = "{job_table}"',
        'defaultOrg = "demo@Org"',
        'defaultSandbox = "prod"',
        *([f'segmentationDataset = "{SEGMENTATION_DATASET}"'] if segmentation else []),
        "",
        "[spark]",
        'master = "local[2]"',
        '"spark.sql.shuffle.partitions" = "4"',
    ]
    for owner in [None, *owners]:
        tenancy = [] if owner is None else [
            f'org = "{owner[0]}"', "sandboxes = [" + ", ".join(f'"{s}"' for s in owner[1]) + "]"]
        for dataset_id in profile_ids:
            lines += ["", "[[profileDatasets]]", f'id = "{dataset_id}"', f'path = "profiles/{dataset_id}"', *tenancy]
        for i in range(event_datasets):
            lines += ["", "[[eventDatasets]]", f'id = "events_{i}"', f'path = "events/events_{i}"', *tenancy]
        lines += ["", "[[destinationDatasets]]", 'id = "audience"', f'path = "{destination}"',
                  'schemaName = "_xdm.context.profile"', *tenancy]
    if segmentation:
        lines += ["", "[[profileDatasets]]", f'id = "{SEGMENTATION_DATASET}"', f'path = "{segmentation}"']
    lines += [
        "", "[[mergePolicies]]", 'id = "timestampOrdered-none-mp"', "version = 1",
        'attributeMerge = "timestampOrdered"', "default = true",
        "", "[[mergePolicies]]", 'id = "dataSetPrecedence-mp"', "version = 1",
        'attributeMerge = "dataSetPrecedence"',
        "order = [" + ", ".join(f'"{d}"' for d in reversed(profile_ids)) + "]",
        "", "[[mergePolicies]]", 'id = "timestampOrdered-pdg-mp"', "version = 1",
        'attributeMerge = "timestampOrdered"', 'identityGraph = "pdg"',
    ]
    for org, sandboxes, token_sha256 in tenants:
        lines += ["", "[[tenants]]", f'org = "{org}"',
                  "sandboxes = [" + ", ".join(f'"{s}"' for s in sandboxes) + "]",
                  f'tokenSha256 = "{token_sha256}"']
    return "\n".join(lines) + "\n"


IDENTITY_MAP = pa.map_(pa.string(), pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())])))
UTC_TIME = pa.timestamp("us", "UTC")


def empty_table(path: Path, **columns: pa.DataType) -> None:
    """An empty profile or event table with identityMap, _ingestTime and `columns`."""
    schema = pa.schema([("identityMap", IDENTITY_MAP), ("_ingestTime", UTC_TIME), *columns.items()])
    write_deltalake(str(path), pa.Table.from_pylist([], schema=schema), mode="overwrite", schema_mode="overwrite")


def token_sha256(token: str) -> str:
    """What a config's [[tenants]] keep of a bearer token."""
    return hashlib.sha256(token.encode()).hexdigest()


def empty_deployment(root: Path, tenants: dict[str, tuple[str, list[str]]]) -> Config:
    """sample_config's datasets as empty Delta tables under `root`, and its config;
    `tenants` maps org → (token, sandboxes)."""
    empty_table(root / "profiles/profiles_0",
                identities=pa.list_(pa.struct([("id", pa.string()), ("namespace", pa.string())])),
                personalEmail=pa.struct([("address", pa.string())]),
                person=pa.struct([("name", pa.struct([("firstName", pa.string())]))]))
    empty_table(root / "profiles/profiles_1", personalEmail=pa.struct([("address", pa.string())]))
    empty_table(root / "events/events_0", _id=pa.string(), timestamp=UTC_TIME, eventType=pa.string())
    conf = root / "export.toml"
    conf.write_text(sample_config(
        root, tenants=[(org, sandboxes, token_sha256(token)) for org, (token, sandboxes) in tenants.items()],
        owners=[(org, sandboxes) for org, (_, sandboxes) in tenants.items() if org != "demo@Org"],
    ))
    return load_config(conf)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/sample_lake.py",
        description="Write a deterministic sample lake into the datasets a config declares.",
    )
    parser.add_argument("--conf", default="conf/export.toml")
    defaults = LakeSpec()
    for name in ("profiles", "namespaces", "segments", "max_memberships", "events_per_profile",
                 "fragments_per_profile", "bad_fragments", "empty_profiles", "seed"):
        parser.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(defaults, name))
    parser.add_argument("--linked-share", type=float, default=defaults.linked_share,
                        help="share of people whose identities are spread over their fragments")
    parser.add_argument("--consents", action="store_true",
                        help="give fragments email-marketing consent (consents.marketing.email.val)")
    parser.add_argument("--linked-events", type=float, default=defaults.linked_events,
                        help="share of events with two identities (the others: one); default: all have all")
    args = parser.parse_args(argv)
    spec = LakeSpec(**{k: v for k, v in vars(args).items() if k != "conf"})
    from jobs.engine import session_for

    config = load_config(args.conf)
    spark = session_for(config, "export-jobs-sample-lake")
    generate(spark, config, spec)
    print(f"sample lake: {spec.profiles} profiles written under {config.resolve('')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
