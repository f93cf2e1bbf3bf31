"""A record's key and rejection reason from its identityMap (jobs.engine.identities), on maps that
take the lambda-free path (up to UNROLLED_NAMESPACES namespaces) and on wider ones."""

from __future__ import annotations

import json

from chispa import assert_df_equality

from jobs.engine import (
    DATASET,
    IDENTITY,
    IDS,
    KEY_ID,
    KEY_NS,
    REJECT,
    UNROLLED_NAMESPACES,
    key_columns,
    rejected_examples,
    with_identities,
)
from jobs.spec import hashed_id

MAP = "identityMap map<string, array<struct<id: string, primary: boolean>>>"
TWO = "2 primary identities; a fragment needs exactly one"
NONE = "no primary identity"


def i(id_: str, primary: bool | None) -> dict:
    return {"id": id_, "primary": primary}


def wide(primaries: set[int]) -> dict:
    """A map of UNROLLED_NAMESPACES + 2 namespaces, primary in the given ones."""
    return {f"N{n}": [i(f"n{n}", n in primaries)] for n in range(UNROLLED_NAMESPACES + 2)}


def test_the_key_is_the_one_primary_identity_of_narrow_and_wide_maps(spark):
    maps = [
        {"ECID": [i("e1", None), i("e2", True)], "Email": [i("m", False)]},
        {"ECID": [i("e", False)], "Email": [i("m1", None), i("m2", True)]},
        {"ECID": [None, i("e", True)]},
        {f"N{n}": [i(f"n{n}", n == UNROLLED_NAMESPACES - 1)] for n in range(UNROLLED_NAMESPACES)},
        wide({UNROLLED_NAMESPACES + 1}),
        {"ECID": [i("e", True)], "Email": [i("m", True)]},
        wide({1, UNROLLED_NAMESPACES + 1}),
        {"ECID": [i("e", False)]},
        {"ECID": []},
        {},
        None,
    ]
    records = with_identities(spark.createDataFrame([(m,) for m in maps], MAP))
    expected = spark.createDataFrame([
        (None, "ECID", "e2"),
        (None, "Email", "m2"),
        (None, "ECID", "e"),
        (None, f"N{UNROLLED_NAMESPACES - 1}", f"n{UNROLLED_NAMESPACES - 1}"),
        (None, f"N{UNROLLED_NAMESPACES + 1}", f"n{UNROLLED_NAMESPACES + 1}"),
        (TWO, "ECID", "e"),
        (TWO, "N1", "n1"),
        (NONE, None, None),
        (NONE, None, None),
        (NONE, None, None),
        (NONE, None, None),
    ], f"{REJECT} string, {KEY_NS} string, {KEY_ID} string")
    for listed in (True, False):  # a fragment's key from its listed identities, an event's from its map
        keyed = records.select(*key_columns(listed=listed)).select(REJECT, KEY_NS, KEY_ID)
        assert_df_equality(keyed, expected, ignore_nullable=True)


def test_a_namespace_with_a_null_list_leaves_no_primary_identity(spark):
    maps = [{"ECID": None, "Email": [i("m", True)]},
            {**wide({0}), "Email": None}]
    records = with_identities(spark.createDataFrame([(m,) for m in maps], MAP))
    for listed in (True, False):
        assert [r[REJECT] for r in records.select(*key_columns(listed=listed)).collect()] == [NONE, NONE]


def test_rejected_examples_hash_ids_as_the_records_other_examples_do(spark):
    df = spark.createDataFrame([("d", "no primary identity", [("ECID", "e-1")], None)],
                               f"{DATASET} string, {REJECT} string, {IDS} array<{IDENTITY}>, _ingestTime timestamp")
    [hashed] = rejected_examples(df, hashed_ids=True)
    assert json.loads(hashed.record)["identities"] == [{"ns": "ECID", "id": hashed_id("e-1")}]
    [plain] = rejected_examples(df, hashed_ids=False)
    assert json.loads(plain.record)["identities"] == [{"ns": "ECID", "id": "e-1"}]
