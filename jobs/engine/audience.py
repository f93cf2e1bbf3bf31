"""A combined mirror's audience counts, kept beside it, so that the next job counts its audience from its
own commit's change feed instead of reading the whole mirror (docs/reference/mirrors.md#the-audiences-counts).

Once a job has counted the audience at the version it wrote, the counts are kept in the mirror's folder,
under KEPT_FOLDER, with the table's id. Delta's readers and VACUUM leave a folder whose name starts with
`_` alone. When the next job's commit is the version right after, its counts are those counts plus the
changes of that one version, read with delta-rs:
- an insert adds the row's namespaces and one profile;
- a delete subtracts them;
- an update subtracts its preimage's namespaces and adds its postimage's.

Anything else counts the whole mirror, as before:
- no counts kept for the version before;
- another commit in between (an erasure, say);
- another table at the path;
- more changes than MOST_CHANGES to read on the driver;
- a path that is not on the local file system.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import deltalake
import pyarrow as pa
import pyarrow.compute as pc
from deltalake.exceptions import DeltaError

KEPT_FOLDER = "_exportJobsAudience"
# Change rows read on the driver at most; a larger change counts the mirror with Spark.
MOST_CHANGES = 1_000_000
CHANGE_TYPE = "_change_type"
SIGNS = {"insert": 1, "update_postimage": 1, "delete": -1, "update_preimage": -1}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Audience:
    """A combined mirror's rows at a version: how many, and how many have each identity namespace."""

    total: int
    by_namespace: dict[str, int]


def local_folder(path: str) -> Path | None:
    """The table's folder when it is on the local file system, else None."""
    if path.startswith("file:"):
        return Path(urlparse(path).path)
    return None if "://" in path else Path(path)


def _kept_file(folder: Path, version: int) -> Path:
    return folder / KEPT_FOLDER / f"{version}.json"


def kept(path: str, version: int, table_id: str) -> Audience | None:
    """The counts kept for the table at `version`, if any were kept for this table."""
    folder = local_folder(path)
    if folder is None:
        return None
    try:
        found = json.loads(_kept_file(folder, version).read_text())
    except (OSError, ValueError):
        return None
    if found.get("tableId") != table_id or found.get("version") != version:
        return None
    return Audience(int(found["total"]), {str(k): int(v) for k, v in found["byNamespace"].items()})


def keep(path: str, version: int, table_id: str, audience: Audience) -> None:
    """Keeps the counts at `version` (written whole, then renamed), and the previous version's only besides.
    A folder it cannot write only costs the next job a count of the whole mirror: the job's commit is made."""
    folder = local_folder(path)
    if folder is None:
        return
    target = _kept_file(folder, version)
    partial = target.with_suffix(".partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps({"tableId": table_id, "version": version, "total": audience.total,
                                       "byNamespace": audience.by_namespace}))
        partial.replace(target)
        for other in target.parent.glob("*.json"):
            if other.stem not in (str(version), str(version - 1)):
                other.unlink(missing_ok=True)
    except OSError as err:
        log.warning("could not keep the audience counts of %s at version %s (%s): its next job counts the "
                    "whole mirror", path, version, err)


def derived(path: str, version: int, table: deltalake.DeltaTable, namespaces: str, changes: int) -> Audience | None:
    """The audience at `version` from the counts kept at the version before and this version's change feed,
    or None (see above). `namespaces`: the rows' column of identity namespaces; `changes`: rows the commit
    inserted, updated or deleted."""
    if changes > MOST_CHANGES:
        return None
    before = kept(path, version - 1, str(table.metadata().id))
    if before is None:
        return None
    try:
        # Quoted: delta-rs reads the names as SQL identifiers, which it would lower-case.
        feed = pa.table(table.load_cdf(starting_version=version, ending_version=version,
                                       columns=[f'"{namespaces}"', CHANGE_TYPE]).read_all())
        return apply_changes(before, feed, namespaces)
    except (DeltaError, OSError, pa.ArrowException) as err:
        log.warning("the change feed of %s at version %s could not be read (%s): counting the whole mirror",
                    path, version, err)
        return None


def apply_changes(before: Audience, feed: pa.Table, namespaces: str) -> Audience:
    """`before` plus the change feed's rows (CHANGE_TYPE and the `namespaces` of each)."""
    total, by_namespace = before.total, Counter(before.by_namespace)
    # delta-rs gives string views, which few of Arrow's kernels take.
    changes = pc.cast(feed[CHANGE_TYPE], pa.string())
    listed = pc.cast(feed[namespaces], pa.list_(pa.string()))
    for change, sign in SIGNS.items():
        rows = listed.filter(pc.equal(changes, change))
        if change in ("insert", "delete"):
            total += sign * len(rows)
        for entry in pc.value_counts(pc.list_flatten(rows)).to_pylist():
            by_namespace[entry["values"]] += sign * entry["counts"]
    return Audience(total, {ns: n for ns, n in sorted(by_namespace.items()) if n})
