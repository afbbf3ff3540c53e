"""`bastion serve` as a user runs it, against a database of its own: a taken port is one line
naming the option that changes it; the banner comes once every listener answers; the terminal
then shows warnings and errors in short form (`--verbose`: every JSON line); no log line is
written twice; a process that stops is named with its log file, and everything stops with it."""

import asyncio
import base64
import json
import os
import re
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import httpx
import psutil
import pytest

from bastion.platform.certs import CertPaths, private_ca_client_context
from bastion.platform.db import plain_dsn
from bastion.platform.metrics import metrics_token_path
from tests.support.logs import log_records
from tests.support.postgres import TestDatabase, accepts_connections, migrated_database
from tests.support.serve import BANNER, SERVE_OPTIONS, free_serve_ports, serve_environment, serving

# Every test here starts `bastion serve`, which starts three processes.
pytestmark = pytest.mark.slow

_EXIT_TIMEOUT_S = 60
_OUTPUT_TIMEOUT_S = 15
# What uvicorn logs, as a warning, on bytes that are not HTTP; the vault names its listener.
_SHORT_WARNINGS = (
    re.compile(r"\d\d:\d\d:\d\d api WARNING Invalid HTTP request received\."),
    re.compile(r"\d\d:\d\d:\d\d vault WARNING Invalid HTTP request received\. listener=public"),
)


@pytest.fixture(scope="module")
def serve_database(pg_server: tuple[str, Path | None]) -> Iterator[TestDatabase]:
    """Not the session's: each start of serve registers one more origin for its demo shop."""
    with migrated_database(*pg_server) as database:
        yield database


@pytest.fixture
def serve_env(serve_database: TestDatabase, tmp_path: Path) -> dict[str, str]:
    """The environment of a serve with logs of the test's own."""
    return serve_environment(serve_database, tmp_path / "logs")


def _send_invalid_request(port: int) -> None:
    """Bytes that are not HTTP: uvicorn answers 400 and logs a warning."""
    with socket.create_connection(("127.0.0.1", port), timeout=_OUTPUT_TIMEOUT_S) as connection:
        connection.sendall(b"not http\r\n\r\n")
        assert connection.recv(64).startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("option", SERVE_OPTIONS)
def test_a_taken_port_is_one_line_naming_it_and_its_option(serve_env: dict[str, str], tmp_path: Path, option: str) -> None:
    ports = free_serve_ports()
    with (
        socket.create_server(("127.0.0.1", ports[option])),
        serving(serve_env, tmp_path / "terminal.txt", ports=ports) as serve,
    ):
        returncode = serve.process.wait(timeout=_EXIT_TIMEOUT_S)
        assert serve.left_running() == []
    printed = serve.printed()
    assert BANNER not in printed
    lines = printed.splitlines()
    assert returncode == 1
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{ports[option]}" in lines[0]
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f" {option}")


def test_the_banner_comes_once_every_listener_answers_then_warnings_in_short_form(
    serve_env: dict[str, str], tmp_path: Path
) -> None:
    with serving(serve_env, tmp_path / "terminal.txt") as serve:
        serve.after_banner()
        # At once, without a retry: the banner said they answer.
        assert httpx.get(f"http://127.0.0.1:{serve.ports['--port']}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{serve.ports['--vault-port']}/healthz").status_code == 200
        assert accepts_connections(serve.ports["--vault-internal-port"])
        _send_invalid_request(serve.ports["--port"])
        _send_invalid_request(serve.ports["--vault-port"])

        def both_warned(_printed: str) -> bool:
            lines = serve.after_banner()
            return all(any(pattern.fullmatch(line) for line in lines) for pattern in _SHORT_WARNINGS)

        serve.wait_until(both_warned, _OUTPUT_TIMEOUT_S, "warning of the API and the vault in short form")
        # Each process writes its records in order: the info records of the requests above came first.
        after = serve.after_banner()
    assert log_records(after) == []
    for pattern in _SHORT_WARNINGS:
        assert len([line for line in after if pattern.fullmatch(line)]) == 1, after


def test_the_demo_shop_runs_only_when_asked_and_metrics_need_the_token(serve_env: dict[str, str], tmp_path: Path) -> None:
    token = metrics_token_path(Path(serve_env["BASTION_DATA_DIR"])).read_text().strip()
    for options, demo_status in (((), 404), (("--demo",), 200)):
        with serving(serve_env, tmp_path / "terminal.txt", *options) as serve:
            serve.after_banner()
            banner = serve.printed()
            api = f"http://127.0.0.1:{serve.ports['--port']}"
            assert httpx.get(f"{api}/demo/checkout").status_code == demo_status
            assert ("demo:  " in banner) is (demo_status == 200)
            assert httpx.get(f"{api}/metrics").status_code == 401
            assert httpx.get(f"{api}/metrics", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
            assert httpx.get(f"{api}/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_no_log_line_is_written_twice(serve_env: dict[str, str], tmp_path: Path) -> None:
    with serving(serve_env, tmp_path / "terminal.txt") as serve:
        serve.after_banner()
        # Not trusting the banner's timing: this test is about the log files.
        serve.wait_until(
            lambda _printed: all(accepts_connections(port) for port in serve.ports.values()), _OUTPUT_TIMEOUT_S, "listeners"
        )
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{serve.ports['--vault-port']}/healthz").status_code == 200
            assert httpx.get(f"http://127.0.0.1:{serve.ports['--port']}/healthz").status_code == 200
        # Stopped, so that the log files hold the shutdown's lines too.
        serve.process.send_signal(signal.SIGTERM)
        assert serve.process.wait(timeout=_EXIT_TIMEOUT_S) == 0
    log_dir = Path(serve_env["BASTION_LOG_DIR"])
    for name in ("api", "vault", "worker"):
        lines = (log_dir / f"{name}.log").read_text().splitlines()
        # Each record has a time of its own: a line written twice is the same record apart from it.
        records = [json.dumps({**json.loads(line), "timestamp": None}, sort_keys=True) for line in lines]
        assert [record for record, count in Counter(records).items() if count > 1] == [], name
    vault_events = [json.loads(line)["event"] for line in (log_dir / "vault.log").read_text().splitlines()]
    assert vault_events.count("request") >= 3
    assert any(event.startswith("Finished server process") for event in vault_events)


def test_verbose_streams_every_json_line(serve_env: dict[str, str], tmp_path: Path) -> None:
    with serving(serve_env, tmp_path / "terminal.txt", "--verbose") as serve:
        serve.after_banner()
        assert httpx.get(f"http://127.0.0.1:{serve.ports['--port']}/healthz").status_code == 200

        def request_logged(_printed: str) -> bool:
            records = log_records(serve.after_banner())
            return any(record.get("event") == "request" and record.get("level") == "info" for record in records)

        serve.wait_until(request_logged, _OUTPUT_TIMEOUT_S, "JSON record of the request")


def test_a_process_that_stops_is_named_with_its_log_and_everything_stops(serve_env: dict[str, str], tmp_path: Path) -> None:
    # The worker refuses to start with a pool of one connection; the API and the vault accept it.
    with serving({**serve_env, "BASTION_DB_POOL_SIZE": "1"}, tmp_path / "terminal.txt") as serve:
        returncode = serve.process.wait(timeout=_EXIT_TIMEOUT_S)
        assert serve.left_running() == []
    lines = serve.printed().splitlines()
    assert returncode == 1
    log = Path(serve_env["BASTION_LOG_DIR"]) / "worker.log"
    # Before the banner or just after it: the worker has no port to wait for.
    stopped = r"error: the worker stopped (during start-up|unexpectedly) \(exit code 1\); its log: "
    assert re.fullmatch(stopped + re.escape(str(log)), lines[-1]), lines
    # The worker's own reason, shown as it wrote it.
    assert any(line.startswith("worker: error: the worker needs BASTION_DB_POOL_SIZE") for line in lines[:-1]), lines


def _secrets_serve_holds(env: dict[str, str]) -> dict[str, str]:
    """Every secret in the data directory and in serve's environment, as text a child's
    environment could hold it in, by name."""
    data_dir = Path(env["BASTION_DATA_DIR"])
    root = (data_dir / "secrets" / "keyring.key").read_bytes()
    held = {
        "the owner's URL": env["BASTION_DATABASE_URL"],
        "the HSM PIN": env["BASTION_PKCS11_PIN"],
        "PGPASSWORD": env["PGPASSWORD"],
        "the keyring root (hex)": root.hex(),
        "the keyring root (base64)": base64.b64encode(root).decode(),
        "the metrics token": metrics_token_path(data_dir).read_text().strip(),
    }
    owner_password = urlsplit(env["BASTION_DATABASE_URL"]).password
    if owner_password:
        held["the owner's password"] = unquote(owner_password)
    for role, password in json.loads((data_dir / "secrets" / "db_roles.json").read_text()).items():
        held[f"{role}'s password"] = password
    return held


async def _connections_by_process(owner_url: str) -> dict[str, set[str]]:
    """The database roles each of serve's processes is connected as, by its application name."""
    connection = await asyncpg.connect(plain_dsn(owner_url))
    try:
        rows = await connection.fetch(
            "SELECT application_name, usename FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name LIKE 'bastion-%'"
        )
    finally:
        await connection.close()
    roles: dict[str, set[str]] = {}
    for row in rows:
        roles.setdefault(row["application_name"], set()).add(row["usename"])
    return roles


def test_each_process_holds_only_its_own_grant(serve_env: dict[str, str], serve_database: TestDatabase, tmp_path: Path) -> None:
    # Secrets serve is given in its environment that no child may inherit.
    env = {**serve_env, "BASTION_PKCS11_PIN": "pin-for-serve-alone", "PGPASSWORD": "password-for-serve-alone"}
    held = _secrets_serve_holds(env)
    secrets_dir = Path(env["BASTION_DATA_DIR"]).resolve() / "secrets"
    with serving(env, tmp_path / "terminal.txt") as serve:
        serve.after_banner()
        # Each process connects: the API to look up a key, the vault's janitor, the worker's relay and sender,
        # the acquirer to say that it is ready.
        api = f"http://127.0.0.1:{serve.ports['--port']}"
        assert httpx.get(f"{api}/v1/customers", headers={"Authorization": "Bearer sk_test_unknown"}).status_code == 401
        acquirer = f"https://127.0.0.1:{serve.ports['--acquirer-port']}/readyz"
        trusted = private_ca_client_context(CertPaths.under(Path(env["BASTION_DATA_DIR"])))
        assert httpx.get(acquirer, verify=trusted).status_code == 200
        children = {child.cmdline()[3]: child for child in psutil.Process(serve.process.pid).children()}
        assert set(children) == {"api", "vault", "worker", "acquirer"}, children
        for name, child in children.items():
            environ = child.environ()
            assert environ.get("BASTION_GRANT") == "stdin", name
            assert {"BASTION_DATABASE_URL", "BASTION_PKCS11_PIN", "PGPASSWORD"}.isdisjoint(environ), name
            everything = "\n".join(f"{key}={value}" for key, value in environ.items())
            assert [what for what, secret in held.items() if secret in everything] == [], name
            files = [Path(os.readlink(f"/proc/{child.pid}/fd/{fd}")) for fd in os.listdir(f"/proc/{child.pid}/fd")]
            assert [file for file in files if file.is_relative_to(secrets_dir)] == [], name
            # The grant arrived on stdin, which is /dev/null once read.
            assert os.readlink(f"/proc/{child.pid}/fd/0") == os.devnull, name
        roles = serve_database.roles

        def each_connected_as_its_role(_printed: str) -> bool:
            connected = asyncio.run(_connections_by_process(serve_database.owner_url))
            expected = {
                "bastion-api": {roles.app},
                "bastion-vault": {roles.vault},
                "bastion-worker": {roles.worker},
                "bastion-relay": {roles.worker},
                "bastion-webhooks": {roles.worker},
                "bastion-acquirer": {roles.acquirer},
            }
            assert all(connected.get(name, expected[name]) == expected[name] for name in expected), connected
            return connected == expected

        serve.wait_until(each_connected_as_its_role, _OUTPUT_TIMEOUT_S, "connection of each process as its own role")
