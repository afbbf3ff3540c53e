"""The origins a merchant registers for its card fields: what is accepted, normalized, refused."""

import pytest

from tests.support.cli import run_bastion
from tests.support.platform import Credentials
from tests.support.postgres import TestDatabase

pytestmark = pytest.mark.processes


async def test_origins_are_added_normalized_listed_and_removed(test_database: TestDatabase, merchant: Credentials) -> None:
    env = test_database.env()
    added = await run_bastion(
        "merchant", "origins", "add", "--merchant", merchant.merchant_id, "HTTPS://Shop.example:443/", env=env
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.split() == ["https://shop.example"]
    local = await run_bastion("merchant", "origins", "add", "--merchant", merchant.merchant_id, "http://localhost:3000", env=env)
    assert local.stdout.split() == ["http://localhost:3000", "https://shop.example"]
    listed = await run_bastion("merchant", "origins", "list", "--merchant", merchant.merchant_id, env=env)
    assert listed.stdout == local.stdout
    removed = await run_bastion(
        "merchant", "origins", "remove", "--merchant", merchant.merchant_id, "https://shop.example", env=env
    )
    assert removed.stdout.split() == ["http://localhost:3000"]


@pytest.mark.parametrize(
    ("origin", "reason"),
    [
        ("http://shop.example", "only by https pages"),
        ("https://shop.example/checkout", "is not an origin"),
        ("https://user@shop.example", "is not an origin"),
        ("shop.example", "is not an origin"),
        ("https://shop.example:99999", "is not an origin"),
    ],
)
async def test_what_is_not_an_https_origin_is_refused(
    test_database: TestDatabase, merchant: Credentials, origin: str, reason: str
) -> None:
    refused = await run_bastion("merchant", "origins", "add", "--merchant", merchant.merchant_id, origin, env=test_database.env())
    assert refused.returncode == 1
    assert reason in refused.stderr


async def test_an_unknown_merchant_is_refused(test_database: TestDatabase) -> None:
    refused = await run_bastion(
        "merchant", "origins", "add", "--merchant", "mer_01M85AAAAAAAAAAAAAAAAAAAAA", "https://a.example", env=test_database.env()
    )
    assert refused.returncode == 1
    assert "No such merchant" in refused.stderr
