"""Segment definitions: created, listed, changed and deleted in their Delta table, each change
validated first (no Spark; the lake's schemas are read with delta-rs)."""

from __future__ import annotations

import pytest

from jobs.control.segments import (
    SegmentConflict,
    SegmentNotFound,
    SegmentStore,
    create_segment,
    delete_segment,
    list_segments,
    update_segment,
)
from jobs.spec.errors import RequestRejected

ORG, SANDBOX = "demo@Org", "prod"


def body(value: str, **changes) -> dict:
    return {"name": "people named Ada", "expression": {"type": "PQL", "format": "pql/text", "value": value},
            "schema": {"name": "_xdm.context.profile"}, **changes}


@pytest.fixture
def store(config) -> SegmentStore:
    return SegmentStore(config.segment_table_path)


def rejected(call) -> dict[str, str]:
    with pytest.raises(RequestRejected) as caught:
        call()
    return {p.path: p.message for p in caught.value.problems}


def test_a_definition_is_stored_with_an_id_and_the_default_policy(store, config):
    created = create_segment(store, config, body('person.name = "Ada"', description="d"), ORG, SANDBOX)
    assert created.merge_policy_id == "timestampOrdered-none-mp" and created.description == "d"
    assert store.get(created.id, ORG, SANDBOX) == created
    assert created.to_dict()["expression"] == {"type": "PQL", "format": "pql/text", "value": 'person.name = "Ada"'}
    with pytest.raises(SegmentNotFound):
        store.get(created.id, "otherOrg", SANDBOX)


@pytest.mark.parametrize("changes, path, words", [
    ({"expression": {"type": "PQL", "format": "pql/text", "value": 'person.nam = "Ada"'}}, "expression.value",
     "'person.nam' at position 1: does not exist in the profile schema"),
    ({"expression": {"type": "PQL", "format": "pql/text", "value": 'person.name = 1'}}, "expression.value",
     "compares a string with a number"),
    ({"expression": {"type": "PQL", "format": "pql/text", "value": 'inSegment("nope")'}}, "expression.value",
     "unknown segment 'nope'"),
    ({"expression": {"type": "PQL", "format": "pql/json", "value": "x"}}, "expression.format", "pql/text"),
    ({"expression": {"type": "SQL", "format": "pql/text", "value": "x"}}, "expression.type", "use PQL"),
    ({"mergePolicyId": "nope"}, "mergePolicyId", "unknown merge policy 'nope'"),
    ({"schema": {"name": "_xdm.context.experienceevent"}}, "schema", "_xdm.context.profile"),
    ({"colour": "red"}, "colour", "unknown key"),
])
def test_a_bad_definition_is_rejected_by_path_and_nothing_is_stored(store, config, changes, path, words):
    problems = rejected(lambda: create_segment(store, config, {**body('person.name = "Ada"'), **changes},
                                                  ORG, SANDBOX))
    assert path in problems and words in problems[path]
    assert store.all(ORG, SANDBOX) == {}


def test_inSegment_names_stored_segments_and_a_cycle_is_refused(store, config):
    a = create_segment(store, config, body('person.name = "Ada"'), ORG, SANDBOX)
    b = create_segment(store, config, body(f'inSegment("{a.id}")'), ORG, SANDBOX)
    problems = rejected(lambda: update_segment(
        store, config, a.id, {"expression": {"type": "PQL", "format": "pql/text",
                                             "value": f'person.name = "x" or inSegment("{b.id}")'}}, ORG, SANDBOX))
    assert "makes a cycle of inSegment references" in problems["expression.value"]
    assert f"{a.id} → {b.id} → {a.id}" in problems["expression.value"]
    assert store.get(a.id, ORG, SANDBOX).pql == 'person.name = "Ada"'  # unchanged


def test_a_partial_update_changes_only_what_it_names(store, config):
    created = create_segment(store, config, body('person.name = "Ada"', description="old"), ORG, SANDBOX)
    renamed = update_segment(store, config, created.id, {"name": "Adas"}, ORG, SANDBOX)
    assert (renamed.name, renamed.description, renamed.pql) == ("Adas", "old", 'person.name = "Ada"')
    assert renamed.update_time > created.update_time and store.get(created.id, ORG, SANDBOX) == renamed
    assert "$" in rejected(lambda: update_segment(store, config, created.id, {}, ORG, SANDBOX))


def test_a_definition_used_by_another_cannot_be_deleted(store, config):
    a = create_segment(store, config, body('person.name = "Ada"'), ORG, SANDBOX)
    b = create_segment(store, config, body(f'inSegment("{a.id}")', name="users of a"), ORG, SANDBOX)
    with pytest.raises(SegmentConflict, match="users of a"):
        delete_segment(store, a.id, ORG, SANDBOX)
    delete_segment(store, b.id, ORG, SANDBOX)
    delete_segment(store, a.id, ORG, SANDBOX)
    assert store.all(ORG, SANDBOX) == {}
    with pytest.raises(SegmentNotFound):
        delete_segment(store, a.id, ORG, SANDBOX)


def test_a_stale_update_loses(store, config):
    created = create_segment(store, config, body('person.name = "Ada"'), ORG, SANDBOX)
    update_segment(store, config, created.id, {"name": "first"}, ORG, SANDBOX)
    with pytest.raises(SegmentConflict, match="changed meanwhile"):
        store.replace(created.updated(name="second", update_time=created.update_time + 5),
                      created.update_time)


def test_the_list_pages_newest_first(store, config):
    ids = [create_segment(store, config, body('person.name = "Ada"', name=f"n{i}"), ORG, SANDBOX).id
           for i in range(3)]
    first = list_segments(store, ORG, SANDBOX, limit=2)
    assert len(first["segments"]) == 2 and first["page"]["pageSize"] == 2
    offset = first["link"]["next"].split("offset=")[1]
    second = list_segments(store, ORG, SANDBOX, limit=2, offset=offset)
    seen = [d["id"] for d in first["segments"] + second["segments"]]
    assert sorted(seen) == sorted(ids) and second["link"] == {}


class StaleReads(SegmentStore):
    """A writer that validates against the scope as it was before another writer's change: as two
    concurrent PATCHes, each reading before the other commits, would."""

    def __init__(self, path: str, stale: dict):
        super().__init__(path)
        self.stale: dict | None = stale

    def all(self, org, sandbox):
        if self.stale is not None:  # the validation's read; the check after the commit reads afresh
            stale, self.stale = self.stale, None
            return stale
        return super().all(org, sandbox)


def test_concurrent_patches_cannot_commit_an_inSegment_cycle(store, config):
    a = create_segment(store, config, body('person.name = "a"'), ORG, SANDBOX)
    b = create_segment(store, config, body('person.name = "b"'), ORG, SANDBOX)
    before = store.all(ORG, SANDBOX)
    update_segment(store, config, a.id, {"expression": body(f'inSegment("{b.id}")')["expression"]}, ORG, SANDBOX)

    racing = StaleReads(store.path, before)  # validated before a named b
    with pytest.raises(SegmentConflict, match="changed meanwhile"):
        update_segment(racing, config, b.id, {"expression": body(f'inSegment("{a.id}")')["expression"]}, ORG, SANDBOX)
    assert store.get(b.id, ORG, SANDBOX).pql == 'person.name = "b"'  # undone: no cycle stays
    delete_segment(store, a.id, ORG, SANDBOX)  # and nothing is stuck


def test_a_definition_naming_one_deleted_meanwhile_is_not_kept(store, config):
    b = create_segment(store, config, body('person.name = "b"'), ORG, SANDBOX)
    before = store.all(ORG, SANDBOX)
    delete_segment(store, b.id, ORG, SANDBOX)
    with pytest.raises(SegmentConflict, match="deleted meanwhile"):
        create_segment(StaleReads(store.path, before), config, body(f'inSegment("{b.id}")'), ORG, SANDBOX)
    assert store.all(ORG, SANDBOX) == {}
