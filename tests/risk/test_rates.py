"""Exchange rates to US dollars: the file's refusals by line, and `bastion risk rates load` as a
real process, whose rates the next assessment converts with."""

from decimal import Decimal
from pathlib import Path

import pytest

from bastion.kernel.ids import new_id
from bastion.platform.db import Actor, Tenant
from bastion.risk import Assessor, Attempt
from bastion.risk.rates import RatesInvalid, parse_rates
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import TestDatabase


def test_a_rates_file_is_read_whole() -> None:
    assert parse_rates("currency,usd_per_unit\nchf, 1.1250\njpy,0.0067\n\n") == [
        ("CHF", Decimal("1.1250")),
        ("JPY", Decimal("0.0067")),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "line 1: the header"),
        ("code,rate\nCHF,1.1", "line 1: the header"),
        ("currency,usd_per_unit\nCHF,1.1\nXXX,2", "line 3: 'XXX' is not an ISO 4217 currency"),
        ("currency,usd_per_unit\nCHF,1.1\nCHF,1.2", "line 3: CHF is given twice"),
        ("currency,usd_per_unit\nCHF,abc", "line 2: 'abc' is not a number"),
        ("currency,usd_per_unit\nCHF,0", "line 2: the rate must be above 0"),
        ("currency,usd_per_unit\nCHF,NaN", "line 2: the rate must be above 0"),
        ("currency,usd_per_unit\nCHF", "line 2: two fields are expected"),
    ],
)
def test_a_bad_rates_file_is_refused_naming_its_line(text: str, message: str) -> None:
    with pytest.raises(RatesInvalid, match=message):
        parse_rates(text)


async def test_loaded_rates_convert_the_next_assessments_amount(
    platform: Platform, merchant: Credentials, test_database: TestDatabase, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("currency,usd_per_unit\nCHF,1.1\nCHF,2\n")
    refused = await run_bastion("risk", "rates", "load", str(bad), env=test_database.env())
    assert refused.returncode == 1
    assert "line 3: CHF is given twice" in refused.stderr

    good = tmp_path / "rates.csv"
    good.write_text("currency,usd_per_unit\nCHF,1.125\n")
    loaded = await run_bastion("risk", "rates", "load", str(good), env=test_database.env())
    assert (loaded.returncode, loaded.stdout.strip()) == (0, "loaded 1 rates to USD"), loaded.stderr

    attempt = Attempt(
        attempt_id=new_id("ch"),
        payment_intent_id=new_id("pi"),
        amount=2_000,
        currency="CHF",
        card_brand="visa",
        card_funding="credit",
        card_fingerprint="0123456789abcdef0123456789abcdef",
        card_last4="4242",
        livemode=False,
    )
    decided = await Assessor(platform.services.database, budget_ms=5_000).assess(
        Tenant(merchant.merchant_id, livemode=False), Actor(id="test"), attempt
    )
    async with platform.owner.transaction() as connection:
        values = await connection.fetchval("SELECT attributes->'values' FROM risk_decisions WHERE id = $1", decided.id)
    assert values["amount_in_usd"] == "22.50"
