"""A Redis server of the tests' own, from Debian's redis-server package: on a free loopback
port, with a password made for it, keeping nothing on disk. The machine's own Redis, if any, is
never used: a user's machine may have none."""

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.postgres import free_port

START_TIMEOUT_S = 15
_NOT_INSTALLED = "redis-server is not installed: install Debian's redis-server package (apt-get install redis-server)"


@contextmanager
def running_redis(directory: Path) -> Iterator[str]:
    """A Redis server working in `directory`; yields its URL."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError(_NOT_INSTALLED)
    port, password = free_port(), secrets.token_urlsafe(24)
    config = directory / "redis.conf"
    # The password goes in a file of the server's, not on its command line for `ps` to show.
    config.write_text(
        f'bind 127.0.0.1\nport {port}\nrequirepass {password}\nsave ""\nappendonly no\n'
        f"dir {directory}\nlogfile {directory / 'redis.log'}\n"
    )
    config.chmod(0o600)
    process = subprocess.Popen([server, str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    try:
        _wait_until_ready(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=START_TIMEOUT_S)


def _wait_until_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            try:
                client.ping()
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
            else:
                return
        raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S} s")
    finally:
        client.close()
