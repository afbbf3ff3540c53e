"""Failpoints for crash tests: `BASTION_FAILPOINT=<name>` makes the process kill itself with
SIGKILL when it reaches that point, as a power cut would. Read once at start; unset (always,
outside tests) a failpoint costs one comparison."""

import os
import signal

_ARMED = os.environ.get("BASTION_FAILPOINT")


def reached(name: str) -> None:
    if name == _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
