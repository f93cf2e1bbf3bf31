"""The deployment configuration: loading, path resolution, validation errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from jobs.spec.config import load_config
from jobs.spec.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXPORT_TOML = REPO / "conf" / "export.toml"

TOKEN = "0" * 64

BASE = f"""
lakeRoot = "lake"
defaultOrg = "demo@Org"
defaultSandbox = "prod"

[[profileDatasets]]
id = "crm"
path = "profiles/crm"

[[profileDatasets]]
id = "loyalty"
path = "profiles/loyalty"

[[destinationDatasets]]
id = "dest"
path = "exports/audience"
schemaName = "_xdm.context.profile"

[[tenants]]
org = "demo@Org"
sandboxes = ["prod"]
tokenSha256 = "{TOKEN}"
"""

DEFAULT_POLICY = """
[[mergePolicies]]
id = "ts"
version = 1
attributeMerge = "timestampOrdered"
default = true
"""


def write(tmp_path: Path, text: str, name: str = "export.toml") -> Path:
    file = tmp_path / name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
    return file


def config_error(tmp_path: Path, text: str) -> str:
    file = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    message = str(caught.value)
    assert str(file) in message, "the message names the config file"
    return message


# ---------------------------------------------------------------- the shipped config


def test_shipped_config_loads():
    config = load_config(EXPORT_TOML)

    assert config.default_org == "demo@Org"
    assert config.default_sandbox == "prod"
    assert [d.id for d in config.profile_datasets] == ["crm_profiles", "loyalty_profiles", "segment_memberships"]
    assert config.segmentation_dataset == "segment_memberships"
    assert config.segment_table_path == str(REPO / "data" / "system" / "segment_definitions")
    assert [d.id for d in config.event_datasets] == ["web_events"]
    destination = config.destination("5b7c86968f7b6501e21ba9df")
    assert destination is not None
    assert destination.schema_name == "_xdm.context.profile"
    assert config.destination("nope") is None


def test_shipped_config_merge_policies():
    config = load_config(EXPORT_TOML)

    default = config.default_policy()
    assert (default.id, default.version, default.attribute_merge) == (
        "timestampOrdered-none-mp", 1, "timestampOrdered"
    )
    precedence = config.policy("loyalty-first-mp", 1)
    assert precedence is not None
    assert precedence.attribute_merge == "dataSetPrecedence"
    assert precedence.order == ["loyalty_profiles", "crm_profiles"]
    assert config.policy("loyalty-first-mp", 2) is None


def test_shipped_config_paths_resolve_under_repo_data():
    config = load_config(EXPORT_TOML)

    assert config.job_table_path == str(REPO / "data" / "system" / "export_jobs")
    assert config.resolve("profiles/crm") == str(REPO / "data" / "profiles" / "crm")


def test_shipped_config_loads_from_relative_path(monkeypatch):
    monkeypatch.chdir(REPO / "conf")

    config = load_config("export.toml")

    assert config.job_table_path == str(REPO / "data" / "system" / "export_jobs")


def test_shipped_config_spark_conf():
    master, conf = load_config(EXPORT_TOML).spark_conf()

    assert master == "local[*]"
    assert conf == {"spark.sql.shuffle.partitions": "8"}


# ---------------------------------------------------------------- paths


def test_lake_root_is_relative_to_config_file_not_cwd(tmp_path, monkeypatch):
    file = write(tmp_path, BASE + DEFAULT_POLICY, "conf/export.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_config(file)

    assert config.resolve("profiles/crm") == str(tmp_path.resolve() / "conf" / "lake" / "profiles" / "crm")


def test_parent_lake_root_resolves_to_clean_absolute_path(tmp_path):
    text = BASE.replace('lakeRoot = "lake"', 'lakeRoot = "../data"') + DEFAULT_POLICY
    config = load_config(write(tmp_path, text, "conf/export.toml"))

    assert config.resolve("profiles/crm") == str(tmp_path.resolve() / "data" / "profiles" / "crm")


def test_job_table_relative_to_lake_root(tmp_path):
    config = load_config(write(tmp_path, BASE + DEFAULT_POLICY))

    assert config.job_table == "system/export_jobs"  # the default
    assert config.job_table_path == str(tmp_path.resolve() / "lake" / "system" / "export_jobs")


def test_lake_root_defaults_to_config_folder(tmp_path):
    text = BASE.replace('lakeRoot = "lake"\n', "") + DEFAULT_POLICY
    config = load_config(write(tmp_path, text))

    assert config.resolve("profiles/crm") == str(tmp_path.resolve() / "profiles" / "crm")


def test_absolute_dataset_path_kept(tmp_path):
    config = load_config(write(tmp_path, BASE + DEFAULT_POLICY))

    assert config.resolve("/srv/lake/profiles") == "/srv/lake/profiles"


def test_absolute_lake_root_kept(tmp_path):
    lake = tmp_path.resolve() / "absolute-lake"
    text = BASE.replace('lakeRoot = "lake"', f'lakeRoot = "{lake}"') + DEFAULT_POLICY
    config = load_config(write(tmp_path, text, "conf/export.toml"))

    assert config.resolve("profiles/crm") == str(lake / "profiles" / "crm")


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/lake/profiles", "abfss://c@acct.dfs.core.windows.net/p", "file:/srv/lake/p", "gs://b/p"],
)
def test_uri_dataset_path_kept(tmp_path, uri):
    config = load_config(write(tmp_path, BASE + DEFAULT_POLICY))

    assert config.resolve(uri) == uri


def test_uri_lake_root_prefixes_relative_paths(tmp_path):
    text = BASE.replace('lakeRoot = "lake"', 'lakeRoot = "s3://bucket/lake/"') + DEFAULT_POLICY
    config = load_config(write(tmp_path, text))

    assert config.resolve("profiles/crm") == "s3://bucket/lake/profiles/crm"
    assert config.job_table_path == "s3://bucket/lake/system/export_jobs"
    assert config.resolve("s3://other/p") == "s3://other/p"


def test_absolute_dataset_path_kept_under_uri_lake_root(tmp_path):
    text = BASE.replace('lakeRoot = "lake"', 'lakeRoot = "s3://bucket/lake"') + DEFAULT_POLICY
    config = load_config(write(tmp_path, text))

    assert config.resolve("/srv/p") == "/srv/p"


def test_deployment_id_defaults_to_hash_of_job_table(tmp_path):
    first = load_config(write(tmp_path / "a", BASE + DEFAULT_POLICY))
    second = load_config(write(tmp_path / "b", BASE + DEFAULT_POLICY))
    named = load_config(write(tmp_path / "c", 'deploymentId = "prod-eu"\n' + BASE + DEFAULT_POLICY))

    assert re.fullmatch(r"[0-9a-f]{12}", first.deployment)
    assert first.deployment == load_config(tmp_path / "a" / "export.toml").deployment
    assert first.deployment != second.deployment
    assert named.deployment == "prod-eu"


# ---------------------------------------------------------------- spark


def test_spark_master_defaults_to_local_star(tmp_path):
    master, conf = load_config(write(tmp_path, BASE + DEFAULT_POLICY)).spark_conf()

    assert master == "local[*]"
    assert conf == {}


def test_spark_conf_maps_master_and_keys(tmp_path):
    spark = """
[spark]
master = "spark://host:7077"
"spark.sql.shuffle.partitions" = 4
"sql.adaptive.enabled" = true
"spark.executor.memory" = "2g"
"spark.speculation" = false
"spark.memory.fraction" = 0.5
"""
    master, conf = load_config(write(tmp_path, BASE + DEFAULT_POLICY + spark)).spark_conf()

    assert master == "spark://host:7077"
    assert conf == {
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.adaptive.enabled": "true",
        "spark.executor.memory": "2g",
        "spark.speculation": "false",
        "spark.memory.fraction": "0.5",
    }


# ---------------------------------------------------------------- errors


def test_missing_file_is_config_error(tmp_path):
    missing = tmp_path / "nope.toml"

    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_config(missing)

    assert str(missing) in str(caught.value)
    assert "--conf" in str(caught.value)


def test_directory_instead_of_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError):
        load_config(tmp_path)


def test_invalid_toml_is_config_error(tmp_path):
    message = config_error(tmp_path, 'lakeRoot = "unterminated\n')

    assert "not valid TOML" in message


def test_unknown_top_level_key_is_config_error(tmp_path):
    message = config_error(tmp_path, BASE + DEFAULT_POLICY + 'lakeRot = "typo"\n')

    assert "lakeRot" in message
    assert "Extra inputs are not permitted" in message


def test_unknown_nested_key_names_its_path(tmp_path):
    text = BASE + DEFAULT_POLICY.replace("default = true", "default = true\ncolour = 'red'")
    message = config_error(tmp_path, text)

    assert "mergePolicies[0].colour" in message


def test_missing_required_key_is_config_error(tmp_path):
    message = config_error(tmp_path, BASE.replace('defaultOrg = "demo@Org"\n', "") + DEFAULT_POLICY)

    assert "defaultOrg" in message


def test_no_default_merge_policy_is_config_error(tmp_path):
    message = config_error(tmp_path, BASE + DEFAULT_POLICY.replace("default = true", "default = false"))

    assert "exactly one merge policy must have default = true" in message


def test_two_default_merge_policies_is_config_error(tmp_path):
    second = DEFAULT_POLICY.replace('id = "ts"', 'id = "ts2"')
    message = config_error(tmp_path, BASE + DEFAULT_POLICY + second)

    assert "exactly one merge policy must have default = true" in message


def test_no_merge_policy_at_all_is_config_error(tmp_path):
    message = config_error(tmp_path, BASE)

    assert "mergePolicies" in message


def test_same_policy_id_and_version_twice_is_config_error(tmp_path):
    twin = DEFAULT_POLICY.replace("default = true", "default = false")
    message = config_error(tmp_path, BASE + DEFAULT_POLICY + twin)

    assert "one id and version twice" in message


def test_dataset_precedence_without_order_is_config_error(tmp_path):
    policy = """
[[mergePolicies]]
id = "prec"
version = 1
attributeMerge = "dataSetPrecedence"
"""
    message = config_error(tmp_path, BASE + DEFAULT_POLICY + policy)

    assert "mergePolicies[1]" in message
    assert "dataSetPrecedence needs an order" in message


def test_order_on_timestamp_ordered_is_config_error(tmp_path):
    text = BASE + DEFAULT_POLICY.replace("default = true", 'default = true\norder = ["crm"]')
    message = config_error(tmp_path, text)

    assert "order applies only to dataSetPrecedence" in message


def test_order_naming_unknown_dataset_is_config_error(tmp_path):
    policy = """
[[mergePolicies]]
id = "prec"
version = 1
attributeMerge = "dataSetPrecedence"
order = ["loyalty", "ghost"]
"""
    message = config_error(tmp_path, BASE + DEFAULT_POLICY + policy)

    assert "merge policy 'prec' orders unknown profile datasets ['ghost']" in message


def test_segmentation_dataset_must_be_a_profile_dataset_outside_every_order(tmp_path):
    unknown = config_error(tmp_path, 'segmentationDataset = "ghost"\n' + BASE + DEFAULT_POLICY)
    assert "segmentationDataset 'ghost' is not a declared profile dataset" in unknown
    ordered = config_error(tmp_path, 'segmentationDataset = "loyalty"\n' + BASE + DEFAULT_POLICY + """
[[mergePolicies]]
id = "prec"
version = 1
attributeMerge = "dataSetPrecedence"
order = ["loyalty", "crm"]
""")
    assert "segmentation dataset 'loyalty' must not be in a merge policy's order (prec)" in ordered


def test_dataset_precedence_with_known_order_loads(tmp_path):
    policy = """
[[mergePolicies]]
id = "prec"
version = 2
attributeMerge = "dataSetPrecedence"
order = ["loyalty", "crm"]
"""
    config = load_config(write(tmp_path, BASE + DEFAULT_POLICY + policy))

    loaded = config.policy("prec", 2)
    assert loaded is not None
    assert loaded.order == ["loyalty", "crm"]


def test_unknown_attribute_merge_is_config_error(tmp_path):
    message = config_error(tmp_path, BASE + DEFAULT_POLICY.replace("timestampOrdered", "newest"))

    assert "attributeMerge" in message


def test_duplicate_profile_dataset_ids_is_config_error(tmp_path):
    twin = '\n[[profileDatasets]]\nid = "crm"\npath = "profiles/crm2"\n'
    message = config_error(tmp_path, BASE + twin + DEFAULT_POLICY)

    assert "profileDatasets declares crm more than once" in message


def test_duplicate_destination_dataset_ids_is_config_error(tmp_path):
    twin = '\n[[destinationDatasets]]\nid = "dest"\npath = "x"\nschemaName = "s"\n'
    message = config_error(tmp_path, BASE + twin + DEFAULT_POLICY)

    assert "destinationDatasets declares dest more than once" in message


def test_bad_token_hash_is_config_error(tmp_path):
    message = config_error(tmp_path, BASE.replace(TOKEN, "not-a-hash") + DEFAULT_POLICY)

    assert "tenants[0].tokenSha256" in message


def test_wrong_type_is_config_error(tmp_path):
    message = config_error(tmp_path, BASE + DEFAULT_POLICY.replace("version = 1", 'version = "one"'))

    assert "mergePolicies[0].version" in message


def test_all_problems_listed_in_one_message(tmp_path):
    text = BASE.replace('defaultSandbox = "prod"\n', "") + DEFAULT_POLICY + 'colour = "red"\n'
    message = config_error(tmp_path, text)

    assert "defaultSandbox" in message
    assert "colour" in message


def test_snake_case_key_is_config_error(tmp_path):
    text = BASE.replace('lakeRoot = "lake"', 'lake_root = "lake"') + DEFAULT_POLICY
    message = config_error(tmp_path, text)

    assert "lake_root" in message


def test_table_retention_defaults_to_a_week(tmp_path):
    assert load_config(write(tmp_path, BASE + DEFAULT_POLICY)).table_retention_hours == 168


@pytest.mark.parametrize("setting, problem", [
    ("tableRetentionHours = 0", "greater than or equal to 1"),
    ("tableRetentionHours = 1.5", "integer"),
    ("leaseSeconds = 7200\ntableRetentionHours = 2", "must be longer than leaseSeconds (7200 s)"),
])
def test_a_table_retention_too_short_for_its_readers_is_config_error(tmp_path, setting, problem):
    message = config_error(tmp_path, setting + "\n" + BASE + DEFAULT_POLICY)

    assert "tableRetentionHours: " in message and problem in message


def test_a_destination_mode_is_append_or_mirror_and_deletion_vectors_need_a_mirror(tmp_path):
    other = '\n[[destinationDatasets]]\nid = "other"\npath = "x"\nschemaName = "s"\n'
    assert "destinationDatasets[1].mode" in config_error(tmp_path, BASE + other + 'mode = "upsert"\n' + DEFAULT_POLICY)
    message = config_error(tmp_path, BASE + other + "deletionVectors = true\n" + DEFAULT_POLICY)
    assert 'deletionVectors applies to mode = "mirror" only' in message
