"""An empty lake written with deltalake (no Spark): enough for the API, which only reads schemas.

Shared by the API tests and scripts/bench_api.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from jobs.config import Config, load_config
from jobs.sample import sample_config

IDENTITY_MAP = pa.map_(pa.string(), pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())])))
UTC_TIME = pa.timestamp("us", "UTC")


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _table(path: Path, **columns: pa.DataType) -> None:
    schema = pa.schema([("identityMap", IDENTITY_MAP), ("_ingestTime", UTC_TIME), *columns.items()])
    write_deltalake(str(path), pa.Table.from_pylist([], schema=schema), mode="overwrite", schema_mode="overwrite")


def empty_deployment(root: Path, tenants: dict[str, tuple[str, list[str]]]) -> Config:
    """The sample config's datasets as empty Delta tables under `root`; `tenants` maps
    org → (token, sandboxes)."""
    _table(root / "profiles/profiles_0",
           identities=pa.list_(pa.struct([("id", pa.string()), ("namespace", pa.string())])),
           personalEmail=pa.struct([("address", pa.string())]),
           person=pa.struct([("name", pa.struct([("firstName", pa.string())]))]))
    _table(root / "profiles/profiles_1", personalEmail=pa.struct([("address", pa.string())]))
    _table(root / "events/events_0", _id=pa.string(), timestamp=UTC_TIME, eventType=pa.string())
    conf = root / "export.toml"
    conf.write_text(sample_config(
        root, tenants=[(org, sandboxes, sha256(token)) for org, (token, sandboxes) in tenants.items()]
    ))
    return load_config(conf)
