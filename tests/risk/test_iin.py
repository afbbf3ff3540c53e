"""Card countries: the IIN file's refusals by line, and `bastion risk iin load` as a real process
whose ranges give the next payment's `:card_country:` from the BIN the vault hands the API (the
most specific range winning)."""

from pathlib import Path

import pytest

from bastion.risk.iin import IinInvalid, iin_number, parse_iin_ranges
from tests.support.cli import run_bastion
from tests.support.platform import Credentials, Platform
from tests.support.postgres import ApiProcess, TestDatabase
from tests.support.vault import VISA, payment_method

VISA_DEBIT = "4000056655665556"


def test_prefixes_become_eight_digit_bounds() -> None:
    assert (iin_number("424242"), iin_number("424242", fill="9"), iin_number("4", fill="9")) == (42424200, 42424299, 49999999)
    assert (iin_number(None), iin_number("42a4"), iin_number("123456789")) == (None, None, None)
    assert parse_iin_ranges("iin_start,iin_end,country\n4,4,us\n400005,400005,GB\n") == [
        (40000000, 49999999, "US"),
        (40000500, 40000599, "GB"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("start,end,country\n4,4,US", "line 1: the header"),
        ("iin_start,iin_end,country\n4,4,US\n40,4,US", "line 3: iin_start and iin_end are prefixes"),
        ("iin_start,iin_end,country\n49,40,US", "line 2: the range ends before it starts"),
        ("iin_start,iin_end,country\n4,4,USA", "line 2: 'USA' is not a two-letter country code"),
        ("iin_start,iin_end,country\n4,4,US\n4,4,FR", "line 3: the range 4-4 is given twice"),
        ("iin_start,iin_end,country\n4,4", "line 2: three fields are expected"),
    ],
)
def test_a_bad_iin_file_is_refused_naming_its_line(text: str, message: str) -> None:
    with pytest.raises(IinInvalid, match=message):
        parse_iin_ranges(text)


async def test_loaded_ranges_give_the_card_country_of_the_next_payment(
    *,
    platform: Platform,
    vault: ApiProcess,
    acquirer: ApiProcess,
    merchant: Credentials,
    test_database: TestDatabase,
    tmp_path: Path,
) -> None:
    ranges = tmp_path / "iin.csv"
    ranges.write_text("iin_start,iin_end,country\n4,4,US\n400005,400005,GB\n")
    loaded = await run_bastion("risk", "iin", "load", str(ranges), env=test_database.env())
    assert (loaded.returncode, loaded.stdout.strip()) == (0, "loaded 2 IIN ranges"), loaded.stderr
    async with platform.client(merchant) as client:
        made = await client.post("/v1/risk/rulesets", json={"rules": [{"rule": "block if :card_country: = 'GB'"}]})
        await client.post(f"/v1/risk/rulesets/{made.json()['id']}/activate", json={})
        paid = await client.post(
            "/v1/payment_intents",
            json={
                "amount": 900,
                "currency": "EUR",
                "confirm": True,
                "payment_method": await payment_method(platform, vault, merchant, number=VISA),
            },
        )
        blocked = await client.post(
            "/v1/payment_intents",
            json={
                "amount": 900,
                "currency": "EUR",
                "confirm": True,
                "payment_method": await payment_method(platform, vault, merchant, number=VISA_DEBIT),
            },
        )
    assert paid.status_code == 200, paid.text
    assert blocked.status_code == 402, blocked.text
    async with platform.owner.transaction() as connection:
        decided = await connection.fetch(
            "SELECT attributes->'values'->>'card_bin' AS bin, attributes->'values'->>'card_country' AS country "
            "FROM risk_decisions WHERE attempt_id = ANY($1::text[]) ORDER BY id",
            [paid.json()["latest_charge"], blocked.json()["error"]["charge"]],
        )
    assert [(row["bin"], row["country"]) for row in decided] == [("424242", "US"), ("400005", "GB")]
