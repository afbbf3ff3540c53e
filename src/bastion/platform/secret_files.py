"""Files that hold secrets (the keyring, the vault's keys, the database roles' passwords,
TLS private keys, the demo's keys): written so that no one else can ever read them, and
refused when someone else could."""

import os
import stat
import tempfile
from pathlib import Path

from bastion.kernel.errors import ConfigurationError

_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def write_secret(path: Path, content: bytes) -> None:
    """`content` at `path`, whole or not at all: written and synced under a fresh name that
    mkstemp creates exclusively with mode 0600, then renamed into place."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def check_private(path: Path) -> None:
    """Refuse a secret file that its group or others may read, write or run."""
    mode = path.stat().st_mode
    if mode & _OTHERS:
        raise ConfigurationError(
            f"{path} is readable by others (mode {stat.S_IMODE(mode):04o}): run `chmod 600 {path}`, then start again"
        )


def read_secret(path: Path) -> bytes:
    """The content of a secret file, after checking that only its owner can read it."""
    check_private(path)
    return path.read_bytes()
