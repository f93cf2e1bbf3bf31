"""Lake schemas without Spark: union of dataset schemas, projection tree, merge leaves."""

from __future__ import annotations

import pytest

from jobs.spec.jobs import parse_field_list
from jobs.spec.schema import (
    Leaf,
    Node,
    SchemaConflict,
    UnknownPath,
    attribute_schema,
    fields_of,
    merge_leaves,
    projection,
    struct_of,
    type_text,
    union_schemas,
)


def array_of(element) -> dict:
    return {"type": "array", "elementType": element, "containsNull": True}


def map_of(key, value) -> dict:
    return {"type": "map", "keyType": key, "valueType": value, "valueContainsNull": True}


IDENTITY_MAP = map_of("string", array_of(struct_of({"id": "string", "primary": "boolean"})))
MEMBERSHIP = map_of(
    "string", map_of("string", struct_of({"status": "string", "lastQualificationTime": "timestamp"}))
)
NAME = struct_of({"firstName": "string", "lastName": "string"})
PERSON = struct_of({"name": NAME, "birthYear": "integer"})
IDENTITIES = array_of(struct_of({"id": "string", "namespace": struct_of({"code": "string"})}))

PROFILE = struct_of({
    "identityMap": IDENTITY_MAP,
    "_ingestTime": "timestamp",
    "segmentMembership": MEMBERSHIP,
    "person": PERSON,
    "personalEmail": struct_of({"address": "string", "primary": "boolean"}),
    "identities": IDENTITIES,
    "loyaltyPoints": "long",
    "tags": array_of("string"),
    "attributes": map_of("string", "string"),
})


def project(fields: str | None) -> tuple[Node, ...]:
    return projection(PROFILE, parse_field_list(fields) if fields is not None else None)


def names(nodes) -> list[str]:
    return [n.name for n in nodes]


def node(nodes, name) -> Node:
    [found] = [n for n in nodes if n.name == name]
    return found


# ---------------------------------------------------------------- helpers


def test_struct_of_builds_delta_json_fields():
    assert struct_of({"a": "string"}) == {
        "type": "struct",
        "fields": [{"name": "a", "type": "string", "nullable": True, "metadata": {}}],
    }
    assert fields_of(struct_of({"a": "string", "b": NAME})) == {"a": "string", "b": NAME}


def test_type_text_renders_nested_types():
    assert type_text(IDENTITIES) == "array<struct<id:string,namespace:struct<code:string>>>"
    assert type_text(map_of("string", "long")) == "map<string,long>"


# ---------------------------------------------------------------- union_schemas


def test_union_by_name_keeps_every_column_in_first_seen_order():
    crm = struct_of({"identityMap": IDENTITY_MAP, "a": "string", "b": "long"})
    loyalty = struct_of({"identityMap": IDENTITY_MAP, "c": "double", "a": "string"})

    merged = union_schemas([("crm", crm), ("loyalty", loyalty)])

    assert fields_of(merged) == {"identityMap": IDENTITY_MAP, "a": "string", "b": "long", "c": "double"}


def test_union_of_one_schema_is_itself():
    assert union_schemas([("crm", PROFILE)]) == PROFILE


def test_union_merges_nested_struct_fields():
    crm = struct_of({"person": struct_of({"name": struct_of({"firstName": "string"})})})
    loyalty = struct_of({"person": struct_of({"name": struct_of({"lastName": "string"}), "tier": "string"})})

    merged = union_schemas([("crm", crm), ("loyalty", loyalty)])

    person = fields_of(merged)["person"]
    assert isinstance(person, dict)
    assert fields_of(person)["name"] == struct_of({"firstName": "string", "lastName": "string"})
    assert fields_of(person)["tier"] == "string"


def test_union_merges_struct_fields_inside_arrays_and_maps():
    crm = struct_of({"ids": array_of(struct_of({"id": "string"})), "m": map_of("string", struct_of({"x": "long"}))})
    loyalty = struct_of({"ids": array_of(struct_of({"ns": "string"})), "m": map_of("string", struct_of({"y": "long"}))})

    merged = fields_of(union_schemas([("crm", crm), ("loyalty", loyalty)]))

    assert merged["ids"] == array_of(struct_of({"id": "string", "ns": "string"}))
    assert merged["m"] == map_of("string", struct_of({"x": "long", "y": "long"}))


def test_union_ignores_nullability_and_metadata_of_struct_fields():
    strict = {"type": "struct", "fields": [
        {"name": "a", "type": "string", "nullable": False, "metadata": {"comment": "x"}},
    ]}
    loose = struct_of({"a": "string"})

    merged = union_schemas([("one", struct_of({"s": strict})), ("two", struct_of({"s": loose}))])

    assert fields_of(merged)["s"] == loose


def test_union_conflict_names_column_and_both_datasets():
    crm = struct_of({"loyaltyPoints": "long"})
    loyalty = struct_of({"loyaltyPoints": "string"})

    with pytest.raises(SchemaConflict) as caught:
        union_schemas([("crm", crm), ("loyalty", loyalty)])

    message = str(caught.value)
    assert "loyaltyPoints" in message
    assert "long" in message and "string" in message
    assert "'crm'" in message and "'loyalty'" in message


def test_union_nested_conflict_names_the_dotted_column():
    crm = struct_of({"person": struct_of({"birthYear": "integer"})})
    loyalty = struct_of({"person": struct_of({"birthYear": "string"})})

    with pytest.raises(SchemaConflict) as caught:
        union_schemas([("crm", crm), ("loyalty", loyalty)])

    message = str(caught.value)
    assert "person.birthYear" in message
    assert "'crm'" in message and "'loyalty'" in message


def test_union_struct_versus_atomic_is_a_conflict():
    with pytest.raises(SchemaConflict, match="person"):
        union_schemas([("crm", struct_of({"person": PERSON})), ("loyalty", struct_of({"person": "string"}))])


def test_union_array_element_conflict_is_a_conflict():
    with pytest.raises(SchemaConflict, match="tags"):
        union_schemas([("crm", struct_of({"tags": array_of("string")})),
                       ("loyalty", struct_of({"tags": array_of("long")}))])


def test_union_nested_conflict_names_the_datasets_that_disagree():
    a = struct_of({"person": struct_of({"name": "string"})})
    b = struct_of({"person": struct_of({"age": "integer"})})
    c = struct_of({"person": struct_of({"age": "string"})})

    with pytest.raises(SchemaConflict) as caught:
        union_schemas([("a", a), ("b", b), ("c", c)])

    message = str(caught.value)
    assert "'b'" in message and "'c'" in message
    assert "'a'" not in message


# ---------------------------------------------------------------- projection


def test_projection_of_top_level_atomic_field():
    assert project("loyaltyPoints") == (Node("loyaltyPoints", "value", "long"),)


def test_projection_keeps_nested_struct_path():
    [person] = project("person.name.firstName")

    assert (person.name, person.kind, person.type) == ("person", "struct", PERSON)
    [name] = person.children
    assert (name.name, name.kind, name.type) == ("name", "struct", NAME)
    assert name.children == (Node("firstName", "value", "string"),)


def test_projection_two_paths_under_one_parent_share_one_struct():
    nodes = project("personalEmail.address, person.name.firstName, person.name.lastName, person.birthYear")

    assert names(nodes) == ["personalEmail", "person"]
    person = node(nodes, "person")
    assert names(person.children) == ["name", "birthYear"]
    assert names(node(person.children, "name").children) == ["firstName", "lastName"]


def test_projection_same_path_twice_gives_one_node():
    assert project("loyaltyPoints,loyaltyPoints") == (Node("loyaltyPoints", "value", "long"),)
    [person] = project("person.birthYear, person.birthYear")
    assert person.children == (Node("birthYear", "value", "integer"),)


def test_projection_through_array_of_structs_keeps_the_array():
    [identities] = project("identities.id")

    assert identities.name == "identities"
    assert identities.kind == "array"
    assert identities.type == IDENTITIES
    assert identities.children == (Node("id", "value", "string"),)


def test_projection_through_array_of_structs_nested_path():
    [identities] = project("identities.namespace.code, identities.id")

    assert identities.kind == "array"
    assert names(identities.children) == ["namespace", "id"]
    namespace = node(identities.children, "namespace")
    assert namespace.kind == "struct"
    assert namespace.children == (Node("code", "value", "string"),)


def test_projection_path_ending_at_struct_expands_to_all_leaves():
    [person] = project("person")

    assert person.kind == "struct"
    assert names(person.children) == ["name", "birthYear"]
    assert names(node(person.children, "name").children) == ["firstName", "lastName"]


def test_projection_whole_struct_and_one_of_its_leaves_in_either_order():
    assert project("person.name.firstName, person") == project("person")
    assert project("person, person.name.firstName") == project("person")


def test_projection_whole_array_of_structs_is_one_value():
    assert project("identities") == (Node("identities", "value", IDENTITIES),)
    assert project("identities.id, identities") == (Node("identities", "value", IDENTITIES),)
    assert project("identities, identities.id") == (Node("identities", "value", IDENTITIES),)


def test_projection_array_and_map_of_atomics_are_values():
    assert project("tags, attributes") == (
        Node("tags", "value", array_of("string")),
        Node("attributes", "value", map_of("string", "string")),
    )


def test_projection_none_selects_every_attribute_without_system_columns():
    nodes = project(None)

    assert names(nodes) == ["person", "personalEmail", "identities", "loyaltyPoints", "tags", "attributes"]
    assert not {"identityMap", "_ingestTime", "segmentMembership"} & set(names(nodes))
    assert node(nodes, "person") == project("person")[0]
    assert node(nodes, "identities") == Node("identities", "value", IDENTITIES)


def test_projection_naming_a_system_column_is_harmless():
    assert project("identityMap, _ingestTime, segmentMembership.ups, loyaltyPoints") == (
        Node("loyaltyPoints", "value", "long"),
    )


def test_attribute_schema_drops_system_columns():
    assert list(fields_of(attribute_schema(PROFILE))) == [
        "person", "personalEmail", "identities", "loyaltyPoints", "tags", "attributes"
    ]


def test_projection_unknown_top_level_path_names_it():
    with pytest.raises(UnknownPath) as caught:
        project("loyaltyPoints, shoeSize")

    assert caught.value.path == "shoeSize"
    assert "'shoeSize'" in str(caught.value)


def test_projection_unknown_nested_path_names_full_path():
    with pytest.raises(UnknownPath) as caught:
        project("person.name.middleName")

    assert caught.value.path == "person.name.middleName"
    assert "'person.name.middleName'" in str(caught.value)
    assert "'middleName'" in str(caught.value)


def test_projection_unknown_field_inside_array_element_names_full_path():
    with pytest.raises(UnknownPath) as caught:
        project("identities.primary")

    assert caught.value.path == "identities.primary"


def test_projection_path_below_atomic_field_is_unknown():
    with pytest.raises(UnknownPath) as caught:
        project("loyaltyPoints.value")

    assert caught.value.path == "loyaltyPoints.value"
    assert "'loyaltyPoints'" in str(caught.value)
    assert "long" in str(caught.value)


def test_projection_path_below_array_of_atomics_or_map_is_unknown():
    with pytest.raises(UnknownPath, match=r"tags\.x"):
        project("tags.x")
    with pytest.raises(UnknownPath, match=r"attributes\.key"):
        project("attributes.key")


def test_projection_of_empty_attribute_schema_is_empty():
    assert projection(struct_of({"identityMap": IDENTITY_MAP, "_ingestTime": "timestamp"}), None) == ()


def test_projection_through_array_of_arrays_of_structs():
    deep = array_of(array_of(struct_of({"x": "string", "y": "long"})))
    profile = struct_of({"deep": deep})

    [top] = projection(profile, [("deep", "x")])

    assert top.kind == "array"
    assert top.type == deep


# ---------------------------------------------------------------- merge_leaves


def test_merge_leaves_lists_each_merged_attribute_once():
    nodes = project("person.name.firstName, person.birthYear, identities.id, loyaltyPoints, personalEmail")

    assert merge_leaves(nodes) == [
        Leaf(("person", "name", "firstName"), "string"),
        Leaf(("person", "birthYear"), "integer"),
        Leaf(("identities",), IDENTITIES),
        Leaf(("loyaltyPoints",), "long"),
        Leaf(("personalEmail", "address"), "string"),
        Leaf(("personalEmail", "primary"), "boolean"),
    ]


def test_merge_leaves_of_all_attributes():
    leaves = merge_leaves(project(None))

    assert [leaf.path for leaf in leaves] == [
        ("person", "name", "firstName"),
        ("person", "name", "lastName"),
        ("person", "birthYear"),
        ("personalEmail", "address"),
        ("personalEmail", "primary"),
        ("identities",),
        ("loyaltyPoints",),
        ("tags",),
        ("attributes",),
    ]


def test_leaf_column_name_joins_path():
    assert Leaf(("person", "name", "firstName"), "string").column == "__person__name__firstName"
    assert Leaf(("loyaltyPoints",), "long").column == "__loyaltyPoints"
