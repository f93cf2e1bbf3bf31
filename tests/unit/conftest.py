"""Fixtures of the unit tests (no Spark)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from jobs.spec.config import load_config
from sample_lake import empty_table, sample_config


@pytest.fixture
def config(tmp_path):
    """The sample config over an empty lake (deltalake tables, no Spark)."""
    empty_table(tmp_path / "profiles/profiles_0", person=pa.struct([("name", pa.string())]))
    empty_table(tmp_path / "profiles/profiles_1", personalEmail=pa.struct([("address", pa.string())]))
    empty_table(tmp_path / "events/events_0", _id=pa.string(), web=pa.struct([("url", pa.string())]))
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path))
    return load_config(conf)


@pytest.fixture
def segment_lake(tmp_path):
    """An empty lake whose attributes segment expressions read, with a segmentation dataset;
    profiles_1 has attributes profiles_0 lacks."""
    empty_table(tmp_path / "profiles/profiles_0", person=pa.struct([("name", pa.string())]),
                points=pa.int64())
    empty_table(tmp_path / "profiles/profiles_1", loyalty=pa.struct([("tier", pa.string())]))
    empty_table(tmp_path / "events/events_0", _id=pa.string(), eventType=pa.string(),
                timestamp=pa.timestamp("us", "UTC"))
    conf = tmp_path / "export.toml"
    conf.write_text(sample_config(tmp_path, segmentation=str(tmp_path / "memberships")))
    return load_config(conf)


def define_segment(config, value: str, policy: str | None = None, org: str = "demo@Org", sandbox: str = "prod") -> str:
    """A segment definition of `value` (PQL) stored in the deployment's segment table; its id."""
    from jobs.control.segments import SegmentStore, create_segment

    body = {"name": value, "expression": {"type": "PQL", "format": "pql/text", "value": value},
            "schema": {"name": "_xdm.context.profile"}, **({"mergePolicyId": policy} if policy else {})}
    return create_segment(SegmentStore(config.segment_table_path), config, body, org, sandbox).id
