"""A flat customer table converted into a profile dataset (jobs.engine.profile_fragments)."""

from __future__ import annotations

from datetime import datetime

import pytest

from jobs.engine import profile_fragments
from jobs.spec import input_shape_problems, read_delta_schema

pytestmark = pytest.mark.spark

LOADED = datetime(2024, 3, 1, 12, 0)


def test_a_flat_table_becomes_fragments_of_the_expected_shape(spark, tmp_path):
    flat = spark.createDataFrame(
        [("c1", "ann@example.com", "Ann", "gold", LOADED), ("c2", None, "Bo", None, LOADED)],
        "customer_id string, email string, first_name string, tier string, loaded_at timestamp")
    fragments = profile_fragments(
        flat, identities={"crmId": "customer_id", "email": "email"}, primary="crmId",
        attributes={"person.name.firstName": "first_name", "loyalty.tier": "tier"}, ingest_time="loaded_at")
    rows = [r.asDict(recursive=True) for r in fragments.orderBy("person.name.firstName").collect()]
    assert rows == [
        {"identityMap": {"crmId": [{"id": "c1", "primary": True}], "email": [{"id": "ann@example.com",
                                                                               "primary": False}]},
         "_ingestTime": LOADED, "person": {"name": {"firstName": "Ann"}}, "loyalty": {"tier": "gold"}},
        {"identityMap": {"crmId": [{"id": "c2", "primary": True}]},  # no email: no entry
         "_ingestTime": LOADED, "person": {"name": {"firstName": "Bo"}}, "loyalty": {"tier": None}},
    ]
    path = str(tmp_path / "customers")
    fragments.write.format("delta").save(path)
    schema = read_delta_schema(path)
    assert schema is not None and input_shape_problems("profile", schema) == []


def test_a_primary_namespace_must_be_one_of_the_identities(spark):
    flat = spark.createDataFrame([("c1",)], "customer_id string")
    with pytest.raises(ValueError, match="primary namespace 'email' is not one of the identities"):
        profile_fragments(flat, identities={"crmId": "customer_id"}, primary="email")
