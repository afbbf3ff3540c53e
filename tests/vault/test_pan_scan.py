"""The PAN scanner on planted data: card numbers in a throwaway schema of the test database
(text, JSON, bytea, a table without an id, an `events` table, names that need quoting) and
in a logs directory, found exactly, shown masked; Luhn-valid numbers that no card network
issues (order ids) left alone; its limits reported."""

import hashlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from bastion.platform.db import plain_dsn
from bastion.platform.redaction import luhn_valid
from bastion.vault.scan import LOG_PIECE_BYTES, PanFinding, PanScan, card_numbers_outside_hex, scan_database, scan_logs
from tests.support.cli import run_bastion
from tests.support.postgres import TestDatabase

# Luhn-valid but no card: no network issues numbers starting with 1 (an order id, say).
ORDER_ID = "17000000000001"
FULL_NUMBERS = ["4242424242424242", "5555555555554444", "378282246310005", "6011111111111117", "3056930009020004"]


def _shows_no_full_number(scan: PanScan) -> None:
    shown = repr(scan)
    assert not [number for number in FULL_NUMBERS if number in shown]


@pytest.fixture
async def connection(test_database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    opened = await asyncpg.connect(plain_dsn(test_database.owner_url))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def schema(connection: asyncpg.Connection) -> AsyncIterator[str]:
    """A throwaway schema with planted card numbers, dropped after: `public` is shared."""
    name = f"pan_scan_{secrets.token_hex(4)}"
    await connection.execute(f"CREATE SCHEMA {name}")
    try:
        columns = "id text PRIMARY KEY, note text, payload jsonb, raw bytea, code varchar(40), amount bigint"
        await connection.execute(f"CREATE TABLE {name}.throwaway ({columns})")
        await connection.execute(f'CREATE TABLE {name}."no id" ("Body ""quoted""" text)')  # names that need quoting
        await connection.execute(f"CREATE TABLE {name}.events (id text PRIMARY KEY, data jsonb)")
        await connection.executemany(
            f"INSERT INTO {name}.throwaway (id, note, payload, raw, code, amount) VALUES ($1, $2, $3, $4, $5, $6)",
            [
                ("row_1", "4242 4242 4242 4242", None, None, None, None),
                ("row_2", "card 5555-5555-5555-4444 here", None, None, None, None),
                ("row_3", None, '{"card": {"n": 378282246310005}}', None, None, None),
                ("row_4", f"order {ORDER_ID} shipped", f'{{"order": {ORDER_ID}}}', None, ORDER_ID, 4242424242424242),
                ("row_5", None, None, b"\x00\x01 6011111111111117 \xff", None, None),
                ("row_6", "clean", '{"amount": 1050, "at": "2026-11-23T12:00:00Z"}', b"\x00\x01", "4242", None),
            ],
        )
        await connection.execute(f"""INSERT INTO {name}."no id" VALUES ('paid with 3056-9300-0902-0004'), ('nothing')""")
        await connection.execute(
            f"""INSERT INTO {name}.events VALUES ('evt_1', '{{"number": "4242424242424242"}}'), ('evt_2', '{{}}')"""
        )
        yield name
    finally:
        await connection.execute(f"DROP SCHEMA {name} CASCADE")


PLANTED_FINDINGS = [
    PanFinding("events column data row id=evt_1", "424242******4242"),
    PanFinding('table no id column Body "quoted" row ctid=(0,1)', "305693******0004"),
    PanFinding("table throwaway column note row id=row_1", "424242******4242"),
    PanFinding("table throwaway column note row id=row_2", "555555******4444"),
    PanFinding("table throwaway column payload row id=row_3", "378282*****0005"),
    PanFinding("table throwaway column raw row id=row_5", "601111******1117"),
]


async def test_planted_card_numbers_are_found_masked_and_nothing_else(connection: asyncpg.Connection, schema: str) -> None:
    assert luhn_valid(ORDER_ID)
    scan = await scan_database(connection, schema)
    assert sorted(scan.findings, key=lambda finding: finding.location) == PLANTED_FINDINGS
    assert scan.incomplete == []
    assert not scan.clean
    _shows_no_full_number(scan)


def _digest_rows(count: int) -> list[tuple[int, str, str, str, str]]:
    """What an installation's tables fill with: keyed hashes and chain hashes (hex, either case),
    idempotency keys and request ids (UUIDs), and both inside JSON, as audit rows hold them."""
    rows = []
    for index in range(count):
        digest = hashlib.sha256(secrets.token_bytes(16)).hexdigest()
        key = str(uuid.uuid4())
        rows.append((index, digest, digest.upper(), key, json.dumps({"prev_hash": digest, "idempotency_key": key})))
    return rows


async def test_tens_of_thousands_of_digests_and_uuids_scan_clean_beside_planted_numbers(
    connection: asyncpg.Connection, schema: str
) -> None:
    # One in about 2,500 random SHA-256 digests holds a Luhn-valid run with a card network's
    # prefix, and UUIDs' digit groups join across their dashes: read as text, these rows
    # give dozens of false findings.
    await connection.execute(
        f"CREATE TABLE {schema}.digests (id bigint PRIMARY KEY, row_hash text, chain_hash text, request_id uuid, detail jsonb)"
    )
    await connection.copy_records_to_table("digests", schema_name=schema, records=_digest_rows(40_000))
    scan = await scan_database(connection, schema)
    assert sorted(scan.findings, key=lambda finding: finding.location) == PLANTED_FINDINGS
    assert scan.incomplete == []


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "4242424242424242 at the start of a line",
        "at the end of a line 4242424242424242\n",
        '{"card": {"number": "4242424242424242"}}',
        '{"number":"4242 4242 4242 4242","sha":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}',
        "key=01J9ZK4242424242424242",  # glued to letters that no hex string has
        "card_4242424242424242",
        "id=44107812-ab12-4c3d-8e9f-0123456789ab paid with 4242 4242 4242 4242",
        "qty 1 4242 4242 4242 4242",
    ],
)
def test_a_card_number_in_text_is_found_wherever_it_is_delimited(text: str) -> None:
    assert list(card_numbers_outside_hex(text)) == ["4242424242424242"]


@pytest.mark.parametrize(
    "text",
    [
        "9f86d081884c7d659a2feaa0c55ad0fa4242424242424242f4f1b2b0b822cd1",  # a digest with a Visa-looking run
        "9F86D081E4242424242424242C0F00A08",
        "44107812-4242-4242-4242-424242424242",  # a UUID of digits
        '{"row_hash": "ab4242424242424242"}',
    ],
)
def test_hex_words_and_uuids_hold_no_card_number(text: str) -> None:
    assert list(card_numbers_outside_hex(text)) == []


async def test_database_limits_are_reported(connection: asyncpg.Connection, schema: str) -> None:
    capped = await scan_database(connection, schema, rows_max=1)
    assert capped.incomplete == ["table throwaway: stopped after 1 rows with 12+ digits"]
    assert set(capped.findings) < set((await scan_database(connection, schema)).findings)
    assert not capped.clean

    stopped = await scan_database(connection, schema, findings_max=2)
    assert len(stopped.findings) == 2
    assert stopped.incomplete[-1].startswith("stopped at 2 findings")


async def test_an_empty_schema_is_clean(connection: asyncpg.Connection) -> None:
    scan = await scan_database(connection, f"no_such_schema_{secrets.token_hex(4)}")
    assert scan.clean


def test_a_planted_card_number_in_a_log_is_found_with_its_file_and_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "api").mkdir(parents=True)
    (logs / "clean.log").write_text(
        f'{{"event": "order", "order_id": {ORDER_ID}}}\n' * 3
        + "ref 1234-5678\n"
        + "".join(f'{{"row_hash": "{digest}", "request_id": "{key}"}}\n' for _, digest, _, key, _ in _digest_rows(5_000))
    )
    planted = logs / "api" / "2026-11-23.log"
    planted.write_text(
        '{"event": "request", "path": "/v1/customers"}\n'
        '{"event": "request", "body": {"card": {"number": "4242424242424242", "exp_month": 12}}}\n'
        "\xff\xfe not UTF-8, read anyway\n",
        encoding="latin-1",
    )
    outside = tmp_path / "elsewhere.log"
    outside.write_text("5555555555554444\n")
    (logs / "link.log").symlink_to(outside)  # a link could lead anywhere: not followed

    scan = scan_logs(logs)
    assert scan.findings == [PanFinding(f"log {planted}:2", "424242******4242")]
    assert scan.incomplete == []
    _shows_no_full_number(scan)


def test_a_line_longer_than_a_piece_is_cut_between_numbers_only(tmp_path: Path) -> None:
    log = tmp_path / "long.log"
    log.write_text(
        "first\n"
        # Cut at the piece size, this 17-digit number would leave a 16-digit Visa-looking head.
        + "x" * (LOG_PIECE_BYTES - 16)
        + "42424242424242428 end\n"
        # And this card number would be split in two halves that are no card number.
        + "x" * (LOG_PIECE_BYTES - 10)
        + " 5555 5555 5555 4444 end\n"
    )
    scan = scan_logs(tmp_path)
    assert scan.findings == [PanFinding(f"log {log}:3", "555555******4444")]


def test_log_limits_are_reported(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("a clean line\n" * 10)
    (tmp_path / "b.log").write_text("4242424242424242\n")
    capped = scan_logs(tmp_path, bytes_max=50)
    assert capped.findings == []
    assert capped.incomplete == [f"logs: stopped after 50 bytes, in {tmp_path / 'a.log'}"]
    assert not capped.clean

    (tmp_path / "c.log").write_text("5555555555554444\n")
    stopped = scan_logs(tmp_path, findings_max=1)
    assert stopped.findings == [PanFinding(f"log {tmp_path / 'b.log'}:1", "424242******4242")]
    assert stopped.incomplete == [f"stopped at 1 findings, in log {tmp_path / 'b.log'}"]


@pytest.mark.processes
async def test_the_command_exits_1_on_a_finding_and_on_logs_it_could_not_read(
    private_database: TestDatabase, tmp_path: Path
) -> None:
    # A database of its own: the session's holds card numbers that other tests typed into free text.
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "api.log").write_text('{"event": "request", "status": 200}\n')
    assert (await run_bastion("vault", "scan-pan", "--logs", str(clean), env=private_database.env())).returncode == 0

    (clean / "worker.log").write_text('{"event": "oops", "detail": "card 5555 5555 5555 4444"}\n')
    found = await run_bastion("vault", "scan-pan", "--logs", str(clean), env=private_database.env())
    assert found.returncode == 1
    assert "555555******4444" in found.stdout
    assert "5555555555554444" not in found.stdout + found.stderr

    missing = await run_bastion("vault", "scan-pan", "--logs", str(tmp_path / "typo"), env=private_database.env())
    assert missing.returncode == 1, "a scan that could not read the logs proves nothing"
    assert "no logs directory" in missing.stderr
