"""Identity stitching (identityGraph pdg, docs/reference/identity-stitching.md): a profile is a connected
component of the identity graph, keyed by its smallest identity.

Nodes are identities `(ns, id)`, compared as structs, so the smallest node of a
component is its profile key and reruns give the same keys. Every record (profile
fragment or event) with several identities links them to its smallest one (a star
per record is enough for connectivity). The components come from alternating
large-star and small-star rounds on the edge DataFrame (Kiveris et al., "Connected
Components in MapReduce and Beyond", SoCC 2014; the algorithm GraphFrames runs):
each half-round is one window over a node's edges, and each round ends with a
checkpoint, so the plan never grows, and one small aggregation that tells whether
the edges are stars yet. Then every non-smallest node has one edge, to its label,
and the graph has converged: the round that would find nothing to change is never run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.engine.columns import IDS, KEY_ID, KEY_NS, MEMBERS
from jobs.engine.identities import identity_list, with_identities
from jobs.engine.inputs import read_source, union_all
from jobs.engine.privacy import not_suppressed
from jobs.planner import ExportPlan
from jobs.spec import JobFailure

log = logging.getLogger(__name__)

SRC, DST = "_src", "_dst"  # an edge between two identities
NODE, LABEL, SIZE = "_node", "_label", "_size"  # an identity, its component's smallest identity, the component's size
EXAMPLES = 10


class GraphDidNotConverge(JobFailure):
    """The identity graph needs more rounds than maxGraphIterations allows."""

    code = "IDENTITY_GRAPH"


@dataclass(frozen=True)
class Components:
    labels: DataFrame  # NODE, LABEL, SIZE, MEMBERS for every node of a component of two or more identities
    rounds: int
    excluded: int  # components over maxIdentitiesPerGraph
    excluded_examples: list[tuple[str, str, int]]  # (key namespace, key id, size), largest first
    max_identities: int


def links(records: DataFrame) -> DataFrame:
    """SRC → DST edges: each record's identities (IDS) linked to its smallest identity."""
    several = records.where(F.size(IDS) > 1).select(F.array_min(IDS).alias(SRC), IDS)
    return several.select(SRC, F.explode(F.array_except(IDS, F.array(SRC))).alias(DST))


def _large_star(edges: DataFrame) -> DataFrame:
    """Each node's larger neighbours are linked to the smallest node of its neighbourhood."""
    both = edges.select(F.col(SRC).alias("u"), F.col(DST).alias("v")).unionByName(
        edges.select(F.col(DST).alias("u"), F.col(SRC).alias("v")))
    smallest = F.least(F.col("u"), F.min("v").over(Window.partitionBy("u")))
    return (both.withColumn("m", smallest).where(F.col("v") > F.col("u"))
            .select(F.col("v").alias(SRC), F.col("m").alias(DST)))


def _small_star(edges: DataFrame) -> DataFrame:
    """Each node and its smaller neighbours are linked to the smallest of them."""
    oriented = edges.select(F.greatest(SRC, DST).alias("u"), F.least(SRC, DST).alias("v"))
    smallest = F.min("v").over(Window.partitionBy("u"))
    star = oriented.withColumn("m", smallest)
    neighbours = star.where(F.col("v") != F.col("m")).select(F.col("v").alias(SRC), F.col("m").alias(DST))
    return neighbours.unionByName(star.select(F.col("u").alias(SRC), F.col("m").alias(DST))).distinct()


def converged(edges: DataFrame) -> bool:
    """Whether the edges, after a round, are stars: no node has two edges out, or edges both out and in.

    Small-star points every edge at a smaller node, so each star's centre is then the
    smallest node of its component, and the stars are the components.
    """
    ends = edges.select(F.col(SRC).alias(NODE), F.lit(1).alias("out")).unionByName(
        edges.select(F.col(DST).alias(NODE), F.lit(0).alias("out")))
    per_node = ends.groupBy(NODE).agg(F.sum("out").alias("out"), F.count(F.lit(1)).alias("ends"))
    return per_node.where((F.col("out") > 0) & (F.col("ends") > 1)).isEmpty()


def connected_components(edges: DataFrame, max_identities: int, max_rounds: int) -> Components:
    """The components of the graph of `edges`, their sizes and members, and what the cap excludes."""
    current = edges.distinct().localCheckpoint()  # large-star reads it twice
    for round_ in range(1, max_rounds + 1):
        current = _small_star(_large_star(current)).localCheckpoint()
        if converged(current):
            return _components(current, max_identities, round_)
    raise GraphDidNotConverge(
        f"the identity graph did not converge in {max_rounds} rounds (maxGraphIterations): its components "
        "are unusually long chains; raise maxGraphIterations in the config, or check the links in the lake")


def _components(stars: DataFrame, max_identities: int, rounds: int) -> Components:
    """From the converged edges (node → its component's smallest node): every node's label, size, members."""
    per_label = stars.groupBy(F.col(DST).alias(LABEL)).agg(F.count(F.lit(1)).alias("n"),
                                                          F.collect_list(SRC).alias("others"))
    members = F.sort_array(F.concat(F.array(F.col(LABEL)), F.col("others")))
    components = per_label.select(LABEL, (F.col("n") + 1).alias(SIZE), members.alias(MEMBERS))
    # Every member gets its component's row: one shuffle (the grouping), no join.
    labels = components.select(F.explode(MEMBERS).alias(NODE), LABEL, SIZE, MEMBERS).localCheckpoint()
    over = labels.where((F.col(NODE) == F.col(LABEL)) & (F.col(SIZE) > max_identities))
    excluded = over.count()
    examples = [(r[LABEL]["ns"], r[LABEL]["id"], r[SIZE]) for r in
                over.orderBy(F.col(SIZE).desc(), LABEL).limit(EXAMPLES).collect()] if excluded else []
    return Components(labels, rounds, excluded, examples, max_identities)


def restitched(records: DataFrame, components: Components) -> DataFrame:
    """Good records (or groups of them) keyed by their component (KEY_NS, KEY_ID of its smallest
    identity, MEMBERS), those of components over the cap left out. A record keyed by an identity
    outside every component of two or more identities keeps that key, and MEMBERS is null (the
    record's own identities are its profile's)."""
    key = F.struct(F.col(KEY_NS).alias("ns"), F.col(KEY_ID).alias("id"))
    # Hashing the labels spares sorting every record by node; the merge sorts them by key after.
    joined = records.withColumn(NODE, key).join(components.labels.hint("shuffle_hash"), NODE, "left")
    kept = joined.where(F.coalesce(F.col(SIZE), F.lit(1)) <= components.max_identities)
    label = F.coalesce(F.col(LABEL), F.col(NODE))
    return (kept.withColumn(KEY_NS, label["ns"]).withColumn(KEY_ID, label["id"])
            .drop(NODE, LABEL, SIZE))


def stitched_components(spark: SparkSession, plan: ExportPlan) -> Components:
    """The components of every profile fragment's and event's identity links (as of an evaluating
    job's `now`)."""
    stitching = plan.stitching
    assert stitching is not None
    tables = [read_source(spark, s) for s in stitching.profile_sources]
    tables += [read_source(spark, s) for s in stitching.event_sources]
    if plan.as_of is not None:
        tables = [t.where(F.col("_ingestTime") < F.lit(plan.as_of)) for t in tables]
    # Only records with two or more identities link any; counting them needs no lambda.
    several = [t.select("identityMap").where(F.size(F.flatten(F.map_values("identityMap"))) > 1) for t in tables]
    if plan.suppressed:  # an erased person's late record links nobody: it is not in the lake for us
        several = [t.where(not_suppressed(plan.suppression_salt, plan.suppressed)) for t in several]
    records = union_all([with_identities(t).select(identity_list().alias(IDS)) for t in several])
    components = connected_components(links(records), stitching.max_identities, stitching.max_iterations)
    log.info("job %s: the identity graph took %d rounds of large-star and small-star; %d components over %d "
             "identities excluded", plan.job_id, components.rounds, components.excluded, stitching.max_identities)
    return components
