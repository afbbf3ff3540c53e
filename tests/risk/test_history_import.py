"""`bastion risk import-transactions`: a file in the Handbook's format loads whole into the
merchant's history, or not at all, naming its bad lines and columns; the same file is not loaded
twice; a header that is not the Handbook's, and a merchant that does not exist, are refused."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from bastion import bootstrap
from bastion.platform.db import Database, Tenant
from bastion.risk.history import HistoryInvalid, import_history
from tests.support.cli import run_bastion
from tests.support.postgres import TestDatabase
from tests.support.risk_ml import HEADER, bastion_in_process, history_count, new_merchant, write_lines

GOOD = (
    HEADER,
    "0,2018-04-01 00:00:31,596,3156,57.16,31,0,0,0",
    "1,2018-04-01 02:10:05,4961,3412,81.51,7805,0,0,0",
    "2,2018-04-02 07:19:05,2,1365,146.00,112745,1,1,2",
    "3,2018-04-02 12:00:00,596,3156,220.01,129600,1,1,1",
    "4,2018-04-03 23:59:59,4961,9999,5.00,259199,2,0,0",
)


@pytest.fixture(scope="module")
async def owner(test_database: TestDatabase) -> AsyncIterator[Database]:
    database = bootstrap.owner_database(test_database.owner_url)
    yield database
    await database.dispose()


@pytest.mark.processes
async def test_a_file_loads_whole_and_only_once(test_database: TestDatabase, owner: Database, tmp_path: Path) -> None:
    merchant_id = await new_merchant(owner)
    path = write_lines(tmp_path / "good.csv", *GOOD)
    ran = await run_bastion("risk", "import-transactions", str(path), "--merchant", merchant_id, env=test_database.env())
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("imported 5 transactions (2 fraudulent) from 2018-04-01 to 2018-04-03 as rhi_")
    async with owner.transaction() as connection:
        rows = await connection.fetch(
            "SELECT * FROM risk_history WHERE merchant_id = $1 ORDER BY transaction_id::int", merchant_id
        )
        [imported] = await connection.fetch("SELECT * FROM risk_history_imports WHERE merchant_id = $1", merchant_id)
    assert [row["transaction_id"] for row in rows] == ["0", "1", "2", "3", "4"]
    assert {(row["livemode"], row["source"], row["import_id"], row["signals"]) for row in rows} == {
        (False, "import", imported["id"], None)
    }
    assert ran.stdout.split(" as ")[1].startswith(imported["id"] + ",")
    assert [(row["customer_key"], row["terminal_key"], row["amount"]) for row in rows] == [
        ("596", "3156", Decimal("57.16")),
        ("4961", "3412", Decimal("81.51")),
        ("2", "1365", Decimal("146.00")),
        ("596", "3156", Decimal("220.01")),
        ("4961", "9999", Decimal("5.00")),
    ]
    assert [row["occurred_at"] for row in rows] == [
        datetime(2018, 4, 1, 0, 0, 31, tzinfo=UTC),
        datetime(2018, 4, 1, 2, 10, 5, tzinfo=UTC),
        datetime(2018, 4, 2, 7, 19, 5, tzinfo=UTC),
        datetime(2018, 4, 2, 12, 0, tzinfo=UTC),
        datetime(2018, 4, 3, 23, 59, 59, tzinfo=UTC),
    ]
    assert [(row["fraud"], row["fraud_scenario"]) for row in rows] == [(False, 0), (False, 0), (True, 2), (True, 1), (False, 0)]
    assert (imported["rows"], imported["frauds"], imported["file_name"]) == (5, 2, "good.csv")

    again = await bastion_in_process("risk", "import-transactions", str(path), "--merchant", merchant_id, env=test_database.env())
    assert again.returncode == 1
    assert again.stderr == f"error: {path}: this file was imported already, as {imported['id']}\n"
    assert await history_count(owner, merchant_id) == (5, 1)
    # The same file for the other mode is another history.
    live = await bastion_in_process(
        "risk", "import-transactions", str(path), "--merchant", merchant_id, "--live", env=test_database.env()
    )
    assert live.returncode == 0, live.stderr
    assert await history_count(owner, merchant_id) == (10, 2)


@pytest.mark.processes
async def test_bad_lines_are_named_and_nothing_is_loaded(test_database: TestDatabase, owner: Database, tmp_path: Path) -> None:
    merchant_id = await new_merchant(owner)
    path = write_lines(
        tmp_path / "bad.csv",
        HEADER,
        "0,2018-04-01 00:00:31,596,3156,57.16,31,0,0,0",  # line 2: good
        "1,2018-04-01 02:10:05,4961,3412,12.3x,7805,0,0,0",  # 3: amount
        "2,2018-02-30 07:19:05,2,1365,146.00,112745,1,1,2",  # 4: no such day
        "3,now,596,3156,220.01,129600,1,1,1",  # 5: PostgreSQL reads 'now' as a time
        "4,2018-04-03 23:59:59,4961,9999,5.00,259199,2,2,0",  # 6: fraud must be 0 or 1
        "5,2018-04-03 23:59:59,,9999,5.00,259199,2,0,0",  # 7: no customer
        '6,2018-04-03 23:59:59,"",9999,5.00,259199,2,0,0',  # 8: a customer of no characters
        "7,2018-04-03 23:59:59,4961,9999,-5.00,259199,2,0,0",  # 9: negative amount
        "8,2018-04-03 23:59:59,4961,9999,5.00,259199,2,0,0",  # 10: good
    )
    ran = await run_bastion("risk", "import-transactions", str(path), "--merchant", merchant_id, env=test_database.env())
    assert ran.returncode == 1
    assert ran.stderr == (
        f"error: {path}: nothing imported: line 3: bad TX_AMOUNT; line 4: bad TX_DATETIME; line 5: bad TX_DATETIME; "
        "line 6: bad TX_FRAUD; line 7: bad CUSTOMER_ID; line 8: bad CUSTOMER_ID; line 9: bad TX_AMOUNT\n"
    )
    assert await history_count(owner, merchant_id) == (0, 0)


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        pytest.param(
            (*GOOD[:3], "2,2018-04-02 07:19:05,2,1365,146.00,112745,1,1,2,extra", *GOOD[4:]),
            "line 4: extra data after last expected column",
            id="extra column",
        ),
        pytest.param(
            (*GOOD[:2], "1,2018-04-01 02:10:05,4961", *GOOD[3:]), "line 3: missing data for column", id="missing columns"
        ),
        pytest.param((HEADER,), "no rows after the header", id="header only"),
        pytest.param((HEADER.replace(",TX_FRAUD,", ","), *GOOD[1:]), "line 1: missing column TX_FRAUD", id="missing column"),
        pytest.param(
            (HEADER + ",COUNTRY", *GOOD[1:]), "line 1: unknown column 'COUNTRY'; expected TRANSACTION_ID,", id="unknown column"
        ),
        pytest.param((HEADER + ",TX_FRAUD", *GOOD[1:]), "line 1: a column is named twice", id="column twice"),
    ],
)
async def test_a_file_the_copy_or_the_header_refuses(
    *, owner: Database, tmp_path: Path, lines: tuple[str, ...], reason: str
) -> None:
    merchant_id = await new_merchant(owner)
    path = write_lines(tmp_path / "refused.csv", *lines)
    with pytest.raises(HistoryInvalid) as refused:
        await import_history(owner, path, Tenant(merchant_id, livemode=False), on_progress=lambda _: None, now=datetime.now(UTC))
    assert reason in str(refused.value)
    assert str(refused.value).startswith(f"{path}: ")
    assert await history_count(owner, merchant_id) == (0, 0)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        pytest.param(
            "\n".join(GOOD).encode().replace(b"4961,3412", b"49\xff1,3412"),
            'line 3: invalid byte sequence for encoding "UTF8": 0xff',
            id="in a row",
        ),
        pytest.param(
            b"TRANSACTION_ID\xff," + "\n".join(GOOD).encode(), "line 1: the header is not UTF-8 text", id="in the header"
        ),
    ],
)
async def test_a_file_not_in_utf_8_is_refused(*, owner: Database, tmp_path: Path, content: bytes, reason: str) -> None:
    merchant_id = await new_merchant(owner)
    path = tmp_path / "latin.csv"
    path.write_bytes(content)
    with pytest.raises(HistoryInvalid) as refused:
        await import_history(owner, path, Tenant(merchant_id, livemode=False), on_progress=lambda _: None, now=datetime.now(UTC))
    assert reason in str(refused.value)
    assert await history_count(owner, merchant_id) == (0, 0)


async def test_an_unknown_merchant_is_refused(test_database: TestDatabase, owner: Database, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "good.csv", *GOOD)
    unknown = "mer_" + "9" * 26
    ran = await bastion_in_process("risk", "import-transactions", str(path), "--merchant", unknown, env=test_database.env())
    assert ran.returncode == 1
    assert ran.stderr == f"error: no such merchant: {unknown}\n"
    assert await history_count(owner, unknown) == (0, 0)
