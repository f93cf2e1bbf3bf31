"""A combined mirror's audience counts: kept beside the mirror, and moved on by a commit's change feed."""

from __future__ import annotations

import pyarrow as pa

from jobs.engine.audience import KEPT_FOLDER, Audience, apply_changes, keep, kept, local_folder

NAMESPACES = "_identityNamespaces"


def feed(*rows: tuple[str, list[str]]) -> pa.Table:
    return pa.table({"_change_type": [r[0] for r in rows], NAMESPACES: [r[1] for r in rows]})


def test_inserts_and_deletes_move_the_total_and_updates_move_only_their_namespaces():
    before = Audience(3, {"ECID": 3, "Email": 1})
    after = apply_changes(before, feed(
        ("insert", ["ECID", "Phone"]),
        ("delete", ["ECID", "Email"]),
        ("update_preimage", ["ECID"]), ("update_postimage", ["ECID", "Email"]),
    ), NAMESPACES)
    assert after == Audience(3, {"ECID": 3, "Email": 1, "Phone": 1})


def test_a_namespace_no_profile_has_any_more_is_not_listed():
    assert apply_changes(Audience(1, {"ECID": 1, "Email": 1}), feed(("delete", ["ECID", "Email"])),
                         NAMESPACES) == Audience(0, {})


def test_counts_are_kept_per_version_for_one_table_and_the_two_latest_stay(tmp_path):
    path = str(tmp_path / "mirror")
    for version in (1, 2, 3):
        keep(path, version, "table-a", Audience(version, {"ECID": version}))
    assert sorted(p.name for p in (tmp_path / "mirror" / KEPT_FOLDER).iterdir()) == ["2.json", "3.json"]
    assert kept(path, 3, "table-a") == Audience(3, {"ECID": 3})
    assert kept(path, 1, "table-a") is None
    assert kept(path, 3, "table-b") is None  # another table at the same path: not its counts
    (tmp_path / "mirror" / KEPT_FOLDER / "3.json").write_text("{not json")
    assert kept(path, 3, "table-a") is None


def test_only_local_paths_keep_counts(tmp_path):
    assert local_folder("/data/mirror") == local_folder("file:///data/mirror")
    assert local_folder("s3://bucket/mirror") is None
    keep("s3://bucket/mirror", 1, "table-a", Audience(1, {}))  # nothing written, no error
    assert kept("s3://bucket/mirror", 1, "table-a") is None


def test_a_folder_it_cannot_write_keeps_nothing_and_raises_nothing(tmp_path):
    (tmp_path / "mirror").write_text("a file where the mirror's folder would be")
    keep(str(tmp_path / "mirror"), 1, "table-a", Audience(1, {}))
    assert kept(str(tmp_path / "mirror"), 1, "table-a") is None
