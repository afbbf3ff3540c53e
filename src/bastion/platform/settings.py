"""Settings come from the environment once, at start-up, and are immutable after."""

import os
from dataclasses import dataclass
from pathlib import Path

from bastion.kernel.errors import ConfigurationError


def _int(name: str, default: int, *, minimum: int, maximum: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigurationError(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    # Owner URL: runs migrations and creates the service roles. None: embedded PostgreSQL.
    database_url: str | None
    # Service roles are cluster-wide in PostgreSQL; a prefix keeps several Bastion
    # databases (tests, staging) apart on one server.
    db_role_prefix: str
    db_pool_size: int
    max_body_bytes: int
    # The ledger's batch route only: 8,000 entries need more room than any other body.
    max_batch_body_bytes: int
    rate_limit_per_s: int
    rate_limit_burst: int
    idempotency_ttl_s: int
    # How long an API process remembers a successful key look-up (0: never).
    auth_cache_ttl_s: int
    log_level: str
    # `module:attribute` import paths of the outbox relay's in-process subscribers.
    subscribers: tuple[str, ...]

    @classmethod
    def from_env(cls) -> "Settings":
        prefix = os.environ.get("BASTION_DB_ROLE_PREFIX", "bastion")
        if not prefix.isidentifier() or not prefix.islower() or len(prefix) > 40:
            raise ConfigurationError("BASTION_DB_ROLE_PREFIX must be a lower-case identifier of at most 40 characters")
        return cls(
            data_dir=Path(os.environ.get("BASTION_DATA_DIR", ".bastion")).resolve(),
            database_url=os.environ.get("BASTION_DATABASE_URL") or None,
            db_role_prefix=prefix,
            db_pool_size=_int("BASTION_DB_POOL_SIZE", 20, minimum=1, maximum=200),
            max_body_bytes=_int("BASTION_MAX_BODY_BYTES", 262_144, minimum=1_024, maximum=16_777_216),
            max_batch_body_bytes=_int("BASTION_MAX_BATCH_BODY_BYTES", 16_777_216, minimum=1_024, maximum=67_108_864),
            rate_limit_per_s=_int("BASTION_RATE_LIMIT_PER_S", 100, minimum=1, maximum=1_000_000),
            rate_limit_burst=_int("BASTION_RATE_LIMIT_BURST", 200, minimum=1, maximum=1_000_000),
            idempotency_ttl_s=_int("BASTION_IDEMPOTENCY_TTL_S", 86_400, minimum=86_400, maximum=30 * 86_400),
            auth_cache_ttl_s=_int("BASTION_AUTH_CACHE_TTL_S", 10, minimum=0, maximum=300),
            log_level=os.environ.get("BASTION_LOG_LEVEL", "info"),
            subscribers=tuple(path.strip() for path in os.environ.get("BASTION_SUBSCRIBERS", "").split(",") if path.strip()),
        )
