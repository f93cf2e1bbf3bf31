"""Previews and estimates in the shape of AEP's segmentation API (docs/reference/segments.md#previews-and-estimates):
the body of `POST /preview`, the stored preview, and the estimate's statistics.

A preview evaluates one PQL expression on a sample of profile keys, drawn by a hash of the key
so that a sampled person is merged whole: each key is in the sample with the same probability
`fraction`, independently of the others (Bernoulli sampling). If `m` sampled profiles match,
`m / fraction` estimates how many of the whole lake's profiles match, and its interval is the
score interval of `m ~ Binomial(M, fraction)` for the unknown count `M`.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from jobs.spec.jobs import JobError
from jobs.spec.models import Record, Strict
from jobs.spec.segments import PROFILE_SCHEMA

CONFIDENCE = 0.95
Z_95 = 1.959963984540054  # the standard normal's 97.5th percentile
# The key hash is cut into this many buckets; a sample is the buckets below a threshold.
HASH_BUCKETS = 1 << 20


class PreviewRequest(Strict):
    """The body of POST /preview."""

    predicate_expression: str = Field(min_length=1)
    predicate_type: Literal["pql/text"] = "pql/text"
    predicate_model: Literal["_xdm.context.profile"] = "_xdm.context.profile"
    # "none" or "pdg": what a profile is; with mergeStrategy it must be that policy's identityGraph.
    graph_type: Literal["none", "pdg"] | None = None
    # A merge policy id (its latest version); default: the config's default, or its first policy of graphType.
    merge_strategy: str | None = Field(default=None, min_length=1)


class PreviewState(StrEnum):
    NEW = "NEW"
    RUNNING = "RUNNING"
    RESULT_READY = "RESULT_READY"
    FAILED = "FAILED"


class Sampling(Record):
    """How the sample was drawn, so that a reader can judge the estimate."""

    method: Literal["keyHash"] = "keyHash"
    # The profile keys whose xxhash64(namespace, id) modulo `buckets` is below `threshold`.
    hash: str = "xxhash64(keyNamespace, keyId) mod buckets < threshold"
    buckets: int = HASH_BUCKETS
    threshold: int
    fraction: float  # threshold / buckets: each key's probability of being in the sample
    sample_key_limit: int  # previewSampleKeys: the sample holds about this many keys at most
    total_rows: int | None  # profile fragments in the lake (Delta statistics), which the fraction is chosen from


class ConfidenceInterval(Record):
    level: float = CONFIDENCE
    low: int
    high: int


class Estimate(Record):
    estimated_size: int
    confidence_interval: ConfidenceInterval
    standard_error: float
    profiles_read_so_far: int  # the profiles in the sample
    matched_in_sample: int
    total_rows: int | None


class Preview(Record):
    """A stored preview: its request, what it resolved to, and once computed its sample's results."""

    preview_id: str
    ims_org_id: str
    sandbox_name: str
    state: PreviewState
    predicate_expression: str
    predicate_type: str = "pql/text"
    predicate_model: str = PROFILE_SCHEMA
    graph_type: str
    merge_strategy: str  # the merge policy id it evaluates with
    evaluation_time: int  # `now` of the expression (epoch ms): the creation time
    sampling: Sampling | None = None
    estimate: Estimate | None = None
    # The matching profiles of the sample (identities and the attributes the expression reads), at most
    # previewProfiles of them, in key order.
    results: list[dict[str, Any]] | None = None
    error: JobError | None = None
    creation_time: int
    update_time: int


def sample_threshold(sample_keys: int, total_rows: int | None) -> int:
    """The bucket threshold that samples about `sample_keys` keys from a lake of `total_rows` fragments
    (a key has at least one fragment, so the keys sampled are at most about `sample_keys`); the whole
    lake when its size is unknown or small."""
    if total_rows is None or total_rows <= sample_keys:
        return HASH_BUCKETS
    return max(1, math.floor(HASH_BUCKETS * sample_keys / total_rows))


def estimate_count(matched: int, sampled: int, fraction: float, total_rows: int | None = None) -> Estimate:
    """The whole lake's matching profiles from `matched` of `sampled` keys drawn with `fraction`.

    The interval holds the counts `M` with (m - M·p)² ≤ z²·M·p·(1-p), the score interval of a
    binomial with known p, widened to at least the `matched` profiles actually seen; it is exact
    (`matched`, `matched`) when the whole lake was read.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction {fraction} is not in (0, 1]")
    p, m, z = fraction, matched, Z_95
    estimate = m / p
    se = math.sqrt(m * (1 - p)) / p
    if p == 1:
        low = high = float(m)
    else:
        b = 2 * m * p + z * z * p * (1 - p)
        root = math.sqrt(max(b * b - 4 * p * p * m * m, 0.0))
        low, high = (b - root) / (2 * p * p), (b + root) / (2 * p * p)
    return Estimate(
        estimated_size=round(estimate),
        confidence_interval=ConfidenceInterval(low=max(m, math.floor(low)), high=max(m, math.ceil(high))),
        standard_error=round(se, 3),
        profiles_read_so_far=sampled,
        matched_in_sample=m,
        total_rows=total_rows,
    )
