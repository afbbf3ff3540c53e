"""What one process of Bastion may use, and nothing more (ADR 15).

`bastion serve` reads the data directory's secrets (the owner's URL, every role's password, the
keyring's root) and gives each of its children only its part: the DSN of its own database role,
the keys of the purposes it serves (derived from the root, never the root), and its own few
secrets. The grant reaches the child on its stdin, which the child reads once and replaces with
/dev/null: not through the environment, which `/proc/<pid>/environ` shows for the process's
whole life and every process it starts inherits, and not through a file left on disk.

A process run on its own (`bastion api`, `worker` or `vault`) builds the same grant from the data
directory itself (`bastion.bootstrap`), so both paths run the same code after it.
"""

import base64
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import orjson

from bastion.kernel.errors import ConfigurationError

# Set by `serve` in a child's environment: "the grant is on your stdin". It names no secret.
GRANT_ENV = "BASTION_GRANT"
_ON_STDIN = "stdin"
# A grant is a few hundred bytes; anything near this is not one (and a pipe holds it whole).
GRANT_BYTES_MAX = 16_384


@dataclass(frozen=True, slots=True)
class Grant:
    # Its own database role, with that role's password: never the owner's.
    database_dsn: str
    # Keyring secrets by purpose, already derived (`LocalKeyring.derive`).
    keys: Mapping[str, bytes]
    # The API's: what a scraper presents to /metrics, and the demo shop's test keys when it runs.
    metrics_token: bytes | None = None
    demo_keys: Mapping[str, str] | None = None
    # The vault's: the HSM's PIN when its key-encryption keys live in one.
    pkcs11_pin: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "database_dsn": self.database_dsn,
                "keys": {purpose: base64.b64encode(key).decode() for purpose, key in self.keys.items()},
                "metrics_token": self.metrics_token.decode() if self.metrics_token is not None else None,
                "demo_keys": dict(self.demo_keys) if self.demo_keys is not None else None,
                "pkcs11_pin": self.pkcs11_pin,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> "Grant":
        try:
            loaded: dict[str, Any] = orjson.loads(raw)
            return cls(
                database_dsn=loaded["database_dsn"],
                keys={purpose: base64.b64decode(key, validate=True) for purpose, key in loaded["keys"].items()},
                metrics_token=loaded["metrics_token"].encode() if loaded["metrics_token"] is not None else None,
                demo_keys=loaded["demo_keys"],
                pkcs11_pin=loaded["pkcs11_pin"],
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError):
            raise ConfigurationError("the grant on stdin is not one `bastion serve` wrote") from None

    def send(self, stdin: IO[bytes]) -> None:
        """Write it to a child's stdin and close that, so the child reads it to the end."""
        raw = self.to_bytes()
        if len(raw) > GRANT_BYTES_MAX:
            raise ConfigurationError(f"a grant of {len(raw)} bytes exceeds {GRANT_BYTES_MAX}")
        with stdin:
            stdin.write(raw)

    @classmethod
    def received(cls) -> "Grant | None":
        """The grant `serve` wrote on this process's stdin, read once (stdin is /dev/null after);
        None when the process was not started by `serve`."""
        if os.environ.get(GRANT_ENV) != _ON_STDIN:
            return None
        raw = sys.stdin.buffer.read(GRANT_BYTES_MAX + 1)
        if len(raw) > GRANT_BYTES_MAX:
            raise ConfigurationError(f"the grant on stdin exceeds {GRANT_BYTES_MAX} bytes")
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(devnull, sys.stdin.fileno())
        finally:
            os.close(devnull)
        # Whatever this process starts must not wait for a grant it will never get.
        del os.environ[GRANT_ENV]
        return cls.from_bytes(raw)
