"""A real uvicorn server on 127.0.0.1 over an empty lake, shared by the API tests (no Spark)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jobs.shells.http import make_server, running
from jobs.spec import Config, load_config
from sample_lake import SEGMENTATION_DATASET, empty_deployment

# org → (token, sandboxes)
TENANTS = {"orgA": ("token-a", ["prod", "dev"]), "orgB": ("token-b", ["prod"])}
# A destination of orgA's prod sandbox alone, which the tenancy tests name from elsewhere; it feeds a
# third party, so personalEmail (labelled C2) may not go there.
PRIVATE_DESTINATION = "orgA-prod-only"


def auth(org: str = "orgA", sandbox: str = "prod", token: str | None = None) -> dict[str, str]:
    """Valid headers for a tenant's org and sandbox (or any token given)."""
    return {
        "Authorization": f"Bearer {token or TENANTS[org][0]}",
        "x-api-key": "test-client",
        "x-gw-ims-org-id": org,
        "x-sandbox-name": sandbox,
    }


@pytest.fixture(scope="session")
def api_config(tmp_path_factory) -> Config:
    root = tmp_path_factory.mktemp("api-lake")
    empty_deployment(root, TENANTS)
    conf = root / "export.toml"
    # orgA's dev sandbox has a segmentation dataset of its own (segment jobs); prod has none.
    conf.write_text(f'segmentationDataset = "{SEGMENTATION_DATASET}"\n' + conf.read_text() + "\n".join([
        "", "[[profileDatasets]]", f'id = "{SEGMENTATION_DATASET}"', 'path = "memberships/orgA-dev"',
        'org = "orgA"', 'sandboxes = ["dev"]',
        "", "[[destinationDatasets]]", f'id = "{PRIVATE_DESTINATION}"', 'path = "exports/orgA-prod"',
        'schemaName = "_xdm.context.profile"', 'org = "orgA"', 'sandboxes = ["prod"]',
        'marketingActions = ["exportToThirdParty"]',
        "", "[[attributeLabels]]", 'path = "personalEmail"', 'labels = ["C2"]',
        "", "[[usagePolicies]]", 'id = "no-third-party"', 'marketingAction = "exportToThirdParty"',
        'deniedLabels = ["C2"]', ""]))
    return load_config(conf)


@pytest.fixture(scope="session")
def base_url(api_config) -> Iterator[str]:
    with running(make_server(api_config, port=0, log_level="warning")) as url:
        yield url


@pytest.fixture(scope="session")
def client(base_url) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        yield http
