"""A real `bastion worker` process, for the tests that kill it (tests/events/test_*kill.py)."""

import os
import subprocess
import sys
from pathlib import Path
from typing import IO

from tests.support.postgres import TestDatabase

REPO_ROOT = Path(__file__).resolve().parents[2]
LOG_TAIL_CHARS = 3000


def start_worker(database: TestDatabase, log: IO[bytes], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """The worker on `database`, its relay delivering to tests.support.subscribers:effect_recorder."""
    env = {
        **database.env(),
        "BASTION_SUBSCRIBERS": "tests.support.subscribers:effect_recorder",
        # The subscriber lives in the tests package, importable from the repository root.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        **(extra_env or {}),
    }
    return subprocess.Popen([sys.executable, "-m", "bastion", "worker"], env=env, cwd=REPO_ROOT, stdout=log, stderr=log)


def log_tail(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-LOG_TAIL_CHARS:]
