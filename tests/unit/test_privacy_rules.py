"""Consent policies and data-usage labels as the config declares them and job creation checks them
(deltalake tables, no Spark)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.planner.build import build_plan, check_job
from jobs.spec import DATA_USAGE_OMITTED, AttributeLabel, ConsentPolicy, UsagePolicy
from jobs.spec.config import load_config
from jobs.spec.errors import ConfigError, RequestRejected
from jobs.spec.jobs import parse_definition
from jobs.spec.privacy import Forbidden, allowed_paths, forbidden_attributes, label_conflicts
from jobs.spec.schema import struct_of
from sample_lake import empty_table, sample_config

PROFILE = {
    "identities": pa.list_(pa.struct([("id", pa.string()), ("namespace", pa.string())])),
    "personalEmail": pa.struct([("address", pa.string())]),
    "person": pa.struct([("name", pa.struct([("firstName", pa.string()), ("lastName", pa.string())]))]),
    "consents": pa.struct([("marketing", pa.struct([("email", pa.struct([("val", pa.string())]))]))]),
}
LABELS = """
[[attributeLabels]]
path = "personalEmail"
labels = ["I1", "C2"]

[[attributeLabels]]
path = "identities.id"
labels = ["I1"]

[[attributeLabels]]
path = "web.url"
labels = ["C2"]
schema = "event"

[[usagePolicies]]
id = "no-third-party"
marketingAction = "exportToThirdParty"
deniedLabels = ["C2"]

[[usagePolicies]]
id = "no-identifying-data-for-analytics"
marketingAction = "crossSiteTargeting"
deniedLabels = ["I1"]
"""


@pytest.fixture
def labelled(tmp_path):
    """The sample config with labels, its destination used for third parties and cross-site targeting."""
    empty_table(tmp_path / "profiles/profiles_0", **PROFILE)
    empty_table(tmp_path / "profiles/profiles_1", personalEmail=PROFILE["personalEmail"])
    empty_table(tmp_path / "events/events_0", _id=pa.string(), web=pa.struct([("url", pa.string())]))
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path).replace(
        'schemaName = "_xdm.context.profile"',
        'schemaName = "_xdm.context.profile"\nmarketingActions = ["exportToThirdParty", "crossSiteTargeting"]')
        + LABELS)
    return load_config(conf)


def body(**changes):
    base = {"destination": {"datasetId": "audience"}, "schema": {"name": "_xdm.context.profile"}}
    return parse_definition({**base, **changes})


def test_a_listed_field_the_destination_may_not_receive_is_rejected_naming_it(labelled):
    with pytest.raises(RequestRejected) as caught:
        check_job(body(fields="person.name, personalEmail.address, identities",
                       additionalFields={"eventList": {"fields": "_id, web"}}), labelled)
    found = [(p.path, p.message) for p in caught.value.problems]
    assert [path for path, _ in found] == ["fields", "fields", "additionalFields.eventList.fields"]
    email, identities, web = (message for _, message in found)
    assert email.startswith("'personalEmail.address' may not be exported here: personalEmail is labelled C2")
    assert "'no-third-party'" in email and "'exportToThirdParty'" in email and "'audience'" in email
    assert identities.startswith("'identities' may not be exported here: identities.id is labelled I1")
    assert web.startswith("'web' may not be exported here: web.url is labelled C2")


def test_no_fields_leaves_out_what_is_forbidden_and_says_so(labelled):
    resolved = check_job(body(additionalFields={"eventList": {}}), labelled)
    assert resolved.projection is not None
    names = {n.name: n for n in resolved.projection}
    assert set(names) == {"identities", "person", "consents"}
    assert [c.name for c in names["identities"].children] == ["namespace"]  # only the labelled element field goes
    assert resolved.events is not None and resolved.events.projection is not None
    assert {n.name for n in resolved.events.projection} == {"_id", "_ingestTime"}
    assert [(w.code, w.path) for w in resolved.warnings] == [
        (DATA_USAGE_OMITTED, "fields"), (DATA_USAGE_OMITTED, "additionalFields.eventList.fields")]
    assert "personalEmail is labelled C2" in resolved.warnings[0].msg
    assert "identities.id is labelled I1" in resolved.warnings[0].msg


def test_a_destination_without_those_actions_receives_everything(tmp_path):
    empty_table(tmp_path / "profiles/profiles_0", **PROFILE)
    empty_table(tmp_path / "profiles/profiles_1", personalEmail=PROFILE["personalEmail"])
    empty_table(tmp_path / "events/events_0", _id=pa.string())
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path) + LABELS)
    resolved = check_job(body(fields="personalEmail.address, identities"), load_config(conf))
    assert resolved.warnings == []


def test_the_run_plans_the_same_projection_and_merges_the_consent_attribute(labelled, tmp_path):
    from jobs.control import JobStore, create_job

    record = create_job(JobStore(str(tmp_path / "jobs")), labelled, body(
        consent={"field": "consents.marketing.email.val", "missing": "include"}).model_dump(by_alias=True,
                                                                                           exclude_none=True),
        "demo@Org", "prod", dry_run=True)
    assert [w.code for w in record.warnings or ()] == [DATA_USAGE_OMITTED]
    plan = build_plan(record, labelled, "test")
    assert {n.name for n in plan.projection} == {"identities", "person", "consents"}
    [rule] = plan.consent
    assert rule.policy.source == "job" and rule.policy.missing == "include"
    assert [leaf.path for leaf in plan.leaves].count(("consents", "marketing", "email", "val")) == 1


def test_explain_shows_the_consent_policies_and_only_the_exported_fields(labelled, tmp_path):
    from jobs.control import JobStore, create_job
    from jobs.planner import explain_plan

    consent = {"field": "consents.marketing.email.val", "allowedValues": ["y"]}
    request = {"fields": "person.name.firstName", "consent": consent, "destination": {"datasetId": "audience"},
               "schema": {"name": "_xdm.context.profile"}}
    record = create_job(JobStore(str(tmp_path / "jobs")), labelled, request, "demo@Org", "prod", dry_run=True)
    explained = explain_plan(build_plan(record, labelled, "test"), {})
    assert explained["fields"] == ["person.name.firstName"]
    assert explained["filter"]["consent"] == [{"source": "job", "missing": "exclude", **consent}]
    assert "consent" in explained["steps"][-3]


def test_labels_on_what_every_export_carries_are_a_config_error(tmp_path):
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path) + '[[attributeLabels]]\npath = "identityMap.Email"\nlabels = ["I1"]\n')
    with pytest.raises(ConfigError, match=r"identityMap\.Email is in every export"):
        load_config(conf)


def test_a_consent_policy_with_a_bad_path_is_a_config_error(tmp_path):
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path).replace(
        'schemaName = "_xdm.context.profile"', 'schemaName = "_xdm.context.profile"\nconsent = { field = "a..b" }'))
    with pytest.raises(ConfigError, match=r"destinationDatasets\[0\].consent.field: .*'a..b' is not a dot path"):
        load_config(conf)


# ---------------------------------------------------------------- the pure rules


def test_forbidden_attributes_follow_the_destination_actions():
    labels = [AttributeLabel(path="a.b", labels=["C2", "I1"]), AttributeLabel(path="e", labels=["C2"], schema="event")]
    policies = [UsagePolicy(id="p", marketingAction="share", deniedLabels=["C2"])]
    assert forbidden_attributes(labels, policies, ["share"], "profile") == [Forbidden(("a", "b"), "C2", "share", "p")]
    assert forbidden_attributes(labels, policies, ["share"], "event") == [Forbidden(("e",), "C2", "share", "p")]
    assert forbidden_attributes(labels, policies, ["email"], "profile") == []


def test_a_requested_path_conflicts_above_at_and_below_a_label():
    rule = Forbidden(("a", "b"), "C2", "share", "p")
    found = label_conflicts([("a",), ("a", "b"), ("a", "b", "c"), ("a", "c"), ("ab",)], [rule])
    assert [path for path, _ in found] == [("a",), ("a", "b"), ("a", "b", "c")]


def test_allowed_paths_keep_siblings_and_array_element_fields():
    schema = struct_of({
        "a": struct_of({"b": "string", "c": "string"}),
        "list": {"type": "array", "containsNull": True, "elementType": struct_of({"id": "string", "ns": "string"})},
        "d": "long",
    })
    rules = [Forbidden(("a", "b"), "C2", "x", "p"), Forbidden(("list", "id"), "I1", "x", "q"),
             Forbidden(("nothing", "here"), "C2", "x", "p")]
    paths, omitted = allowed_paths(schema, rules)
    assert paths == [("a", "c"), ("list", "ns"), ("d",)]
    assert omitted == rules[:2]
    assert allowed_paths(schema, []) == ([("a",), ("list",), ("d",)], [])


def test_a_policy_is_loosened_by_more_values_or_by_including_missing_ones():
    strict = ConsentPolicy(field="c.v")
    assert strict.loosened_by(ConsentPolicy(field="c.v", allowedValues=["y"])) == []
    assert strict.loosened_by(ConsentPolicy(field="other", allowedValues=["n"], missing="include")) == []
    assert [k for k, _ in strict.loosened_by(ConsentPolicy(field="c.v", allowedValues=["y", "n"],
                                                           missing="include"))] == ["allowedValues", "missing"]
