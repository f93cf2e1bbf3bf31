"""Names and types of the engine's working columns, shared by its modules.

Working columns start with an underscore so that they never collide with a
profile attribute; none of them reaches the destination but `_batchId`.
"""

from __future__ import annotations

import hashlib
import json

KEY_NS, KEY_ID = "_keyNs", "_keyId"  # the profile key: one identity (namespace, id)
RANK = "_rank"  # orders a key's fragments in the merge; the highest non-null value wins
IDS = "_ids"  # a record's identities as array<IDENTITY>, sorted after the merge
REJECT = "_reject"  # why a record is rejected; null for a good one
DATASET = "_datasetId"
IDENTITIES = "_identities"  # a record's identities with their primary flags, see identities.with_identities
CANDIDATE = "_candidate"  # some fragment of the key may make it qualify, see merge.merge_profiles
CHANGED = "_changed"  # the fragment's key changed since an incremental job's start, see merge.keyed_fragments
HAS_PROFILE = "_hasProfile"  # true on merged profiles; null on keys that only have events
MEMBERSHIPS = "_memberships"  # all memberships, ranked, when a job names no segments
FLAGGED = "_flagged"  # identityGraph pdg: a record's identities with their primary flags, as ingested
MEMBERS = "_members"  # identityGraph pdg: every identity of the record's component (null: just its own)
BATCH = "_batchId"  # the destination's batch column

IDENTITY = "struct<ns: string, id: string>"
IDENTITY_MAP = "map<string, array<struct<id: string, primary: boolean>>>"
MEMBERSHIP = "struct<status: string, lastQualificationTime: timestamp>"
MEMBERSHIP_MAP = f"map<string, map<string, {MEMBERSHIP}>>"
# The segmentation dataset's fragments: what evaluation writes back, and how it reads before the first write.
SEGMENTATION_SCHEMA = f"identityMap {IDENTITY_MAP}, _ingestTime timestamp, segmentMembership {MEMBERSHIP_MAP}"


def segment_column(namespace: str, segment_id: str) -> str:
    """The merged membership of one requested segment. A digest of the (namespace, id) pair, so that
    any id (with a dot, a backtick, a bracket) makes a plain column name that F.col reads as is."""
    return "__seg_" + hashlib.sha256(json.dumps([namespace, segment_id]).encode()).hexdigest()[:24]
