"""The real `bastion` command line, run as a subprocess."""

import asyncio
import os
import sys
from dataclasses import dataclass

CLI_TIMEOUT_S = 60


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


async def run_bastion(*args: str, env: dict[str, str] | None = None) -> Ran:
    """`bastion <args>` with `env` (default: this process's), killed after CLI_TIMEOUT_S."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bastion",
        *args,
        env=env if env is not None else dict(os.environ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT_S)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Ran(process.returncode, stdout.decode(), stderr.decode())
