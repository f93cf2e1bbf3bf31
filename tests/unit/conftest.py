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
