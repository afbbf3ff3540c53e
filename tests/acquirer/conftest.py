"""What the acquirer's tests share: a client of the session's acquirer, as Bastion's connector is."""

from collections.abc import AsyncIterator

import httpx
import pytest

from bastion import bootstrap
from bastion.platform.certs import CertPaths, private_ca_client_context
from bastion.platform.settings import Settings
from tests.support.postgres import ApiProcess, TestDatabase


@pytest.fixture
async def client(acquirer: ApiProcess, test_database: TestDatabase, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    secret = bootstrap.acquirer_api_key(bootstrap.acquirer_grant(settings, test_database.owner_url))
    async with httpx.AsyncClient(
        base_url=acquirer.url,
        verify=private_ca_client_context(CertPaths.under(test_database.data_dir)),
        headers={"Authorization": f"Bearer {secret}"},
        trust_env=False,
    ) as client:
        yield client
