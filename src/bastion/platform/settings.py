"""Settings come from the environment once, at start-up, and are immutable after."""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

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


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default)
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _origin(name: str, default: str) -> str:
    """A scheme, host and optional port, without a path: a browser origin or a listener's base URL."""
    value = os.environ.get(name, default).rstrip("/")
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path or parsed.query:
        raise ConfigurationError(f"{name} must look like https://host:port, got {value!r}")
    try:
        parsed.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        raise ConfigurationError(f"{name} has an invalid port: {value!r}") from None
    return value


def _redis_url(name: str) -> str | None:
    """A Redis URL (`redis://`, `rediss://` or `unix://`), or None when unset. It may hold a
    password, so a refusal names only its scheme."""
    value = os.environ.get(name, "")
    if not value:
        return None
    parsed = urlsplit(value)
    if parsed.scheme not in ("redis", "rediss", "unix") or (parsed.scheme != "unix" and not parsed.hostname):
        raise ConfigurationError(f"{name} must look like redis://host:port/0 or rediss://..., got scheme {parsed.scheme!r}")
    return value


def _proxy_url(name: str) -> str | None:
    """An HTTP proxy's URL, or None when unset. It may hold credentials, so a refusal names only its scheme."""
    value = os.environ.get(name, "")
    if not value:
        return None
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError(f"{name} must look like http://proxy:4750, got scheme {parsed.scheme!r}")
    return value


def _connectors(raw: str) -> dict[str, str]:
    """`name=https://host:port,name=...`: the processors the vault may forward card data to."""
    connectors: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, separator, url = item.partition("=")
        if not separator or not name.isidentifier():
            raise ConfigurationError(f"BASTION_VAULT_CONNECTORS: expected name=url, got {item!r}")
        parsed = urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigurationError(f"BASTION_VAULT_CONNECTORS: {name} needs an http(s) URL, got {url!r}")
        connectors[name] = url.rstrip("/")
    return connectors


def _connector_cas(raw: str, connectors: dict[str, str]) -> dict[str, Path]:
    """`name=/path/ca.pem,...`: connectors whose server certificate must chain to that CA alone."""
    pinned: dict[str, Path] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, separator, path = item.partition("=")
        if not separator or not path:
            raise ConfigurationError(f"BASTION_VAULT_CONNECTOR_CAS: expected name=/path/to/ca.pem, got {item!r}")
        if not connectors.get(name, "").startswith("https://"):
            raise ConfigurationError(f"BASTION_VAULT_CONNECTOR_CAS: {name} is not an https connector of BASTION_VAULT_CONNECTORS")
        if not Path(path).is_file():
            raise ConfigurationError(f"BASTION_VAULT_CONNECTOR_CAS: {name}'s CA file {path} does not exist")
        pinned[name] = Path(path).resolve()
    return pinned


_PER_MILLE = 1_000


@dataclass(frozen=True, slots=True)
class AcquirerChaos:
    """How the sandbox acquirer misbehaves in tests, decided per request by `seed`: a latency up
    to `latency_ms`, a 5xx without acting (`error_per_mille`), or the request done and its answer
    held back `hang_ms`, longer than its caller waits (`timeout_per_mille`)."""

    seed: int
    latency_ms: int
    error_per_mille: int
    timeout_per_mille: int
    hang_ms: int

    @classmethod
    def from_env(cls) -> "AcquirerChaos | None":
        if not os.environ.get("BASTION_ACQUIRER_CHAOS_SEED"):
            return None
        chaos = cls(
            seed=_int("BASTION_ACQUIRER_CHAOS_SEED", 0, minimum=0, maximum=2**31 - 1),
            latency_ms=_int("BASTION_ACQUIRER_CHAOS_LATENCY_MS", 0, minimum=0, maximum=10_000),
            error_per_mille=_int("BASTION_ACQUIRER_CHAOS_ERROR_PER_MILLE", 0, minimum=0, maximum=_PER_MILLE),
            timeout_per_mille=_int("BASTION_ACQUIRER_CHAOS_TIMEOUT_PER_MILLE", 0, minimum=0, maximum=_PER_MILLE),
            hang_ms=_int("BASTION_ACQUIRER_CHAOS_HANG_MS", 2_000, minimum=0, maximum=60_000),
        )
        if chaos.error_per_mille + chaos.timeout_per_mille > _PER_MILLE:
            raise ConfigurationError("BASTION_ACQUIRER_CHAOS_ERROR_PER_MILLE and _TIMEOUT_PER_MILLE add up to more than 1000")
        return chaos


# NATS subjects are dot-separated tokens; stream and consumer names are single tokens.
_NATS_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NATS_SUBJECT_PREFIX = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
# Kafka's legal topic characters and length; `{object}` stands for the event's object type.
_KAFKA_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,200}")
KAFKA_TOPIC_OBJECT = "{object}"


def _bus_publish_timeout_s() -> float:
    return _int("BASTION_BUS_PUBLISH_TIMEOUT_MS", 5_000, minimum=100, maximum=60_000) / 1000


def _nats_token(name: str, default: str) -> str:
    value = os.environ.get(name) or default
    if _NATS_TOKEN.fullmatch(value) is None:
        raise ConfigurationError(f"{name} must be 1-64 letters, digits, '_' or '-', got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class NatsBus:
    """Where the outbox is also published on NATS JetStream, and where its consumers dead-letter (docs/events.md)."""

    # Each server's URL may hold credentials, so a refusal names only its scheme.
    servers: tuple[str, ...]
    stream: str
    dlq_stream: str
    # Subjects are `<prefix>.events.<live|test>.<type>` and `<prefix>.dlq.<consumer>.<original subject>`.
    subject_prefix: str
    duplicate_window_s: int
    # Both streams drop messages older than this: a bound on the broker's disk.
    max_age_s: int
    publish_timeout_s: float

    @classmethod
    def from_env(cls) -> "NatsBus | None":
        raw = os.environ.get("BASTION_NATS_URL", "")
        servers = tuple(filter(None, (part.strip() for part in raw.split(","))))
        if not servers:
            return None
        for server in servers:
            parsed = urlsplit(server)
            if parsed.scheme not in ("nats", "tls") or not parsed.hostname:
                raise ConfigurationError(
                    f"BASTION_NATS_URL must be nats://host:4222 or tls://host:4222, comma-separated, got scheme {parsed.scheme!r}"
                )
        stream = _nats_token("BASTION_NATS_STREAM", "BASTION_EVENTS")
        dlq_stream = _nats_token("BASTION_NATS_DLQ_STREAM", "BASTION_DLQ")
        if dlq_stream == stream:
            raise ConfigurationError("BASTION_NATS_DLQ_STREAM must differ from BASTION_NATS_STREAM")
        prefix = os.environ.get("BASTION_NATS_SUBJECT_PREFIX") or "bastion"
        if _NATS_SUBJECT_PREFIX.fullmatch(prefix) is None or len(prefix) > 64:
            raise ConfigurationError(
                "BASTION_NATS_SUBJECT_PREFIX must be dot-separated tokens of letters, digits, '_' or '-'"
                f" (at most 64 characters), got {prefix!r}"
            )
        return cls(
            servers=servers,
            stream=stream,
            dlq_stream=dlq_stream,
            subject_prefix=prefix,
            duplicate_window_s=_int("BASTION_NATS_DUPLICATE_WINDOW_S", 120, minimum=1, maximum=86_400),
            max_age_s=_int("BASTION_NATS_MAX_AGE_S", 7 * 86_400, minimum=3_600, maximum=365 * 86_400),
            publish_timeout_s=_bus_publish_timeout_s(),
        )


@dataclass(frozen=True, slots=True)
class KafkaBus:
    """Where the outbox is also published on Kafka (docs/events.md)."""

    bootstrap_servers: str
    # A fixed topic, or one per object type where it holds `{object}` (`bastion.{object}`).
    topic: str
    publish_timeout_s: float

    @classmethod
    def from_env(cls) -> "KafkaBus | None":
        raw = os.environ.get("BASTION_KAFKA_BOOTSTRAP_SERVERS", "")
        servers = [part.strip() for part in raw.split(",") if part.strip()]
        if not servers:
            return None
        for server in servers:
            host, separator, port = server.rpartition(":")
            if not separator or not host or not port.isdigit() or not 0 < int(port) < 65_536:
                raise ConfigurationError(f"BASTION_KAFKA_BOOTSTRAP_SERVERS: expected host:port, got {server!r}")
        topic = os.environ.get("BASTION_KAFKA_TOPIC") or "bastion.events"
        if topic.count(KAFKA_TOPIC_OBJECT) > 1 or _KAFKA_TOPIC.fullmatch(topic.replace(KAFKA_TOPIC_OBJECT, "x")) is None:
            raise ConfigurationError(
                "BASTION_KAFKA_TOPIC must be a topic name of letters, digits, '.', '_' or '-' (at most 200),"
                f" with {KAFKA_TOPIC_OBJECT} at most once for a topic per object type, got {topic!r}"
            )
        return cls(bootstrap_servers=",".join(servers), topic=topic, publish_timeout_s=_bus_publish_timeout_s())


# The connector of the sandbox acquirer (`bastion acquirer`), which the vault always knows: at
# BASTION_ACQUIRER_URL, its certificate issued by the install's private CA.
SANDBOX_CONNECTOR = "sandbox"


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
    # How long a phased command's holder may hold its key before a retry or the janitor
    # takes it over as abandoned: longer than any outside call's own deadline.
    idempotency_hold_timeout_s: int
    # How often each API process's janitor looks for abandoned phased commands to finish.
    idempotency_resume_interval_s: int
    # How long an API process remembers a successful key look-up (0: never).
    auth_cache_ttl_s: int
    log_level: str
    # Each process also appends its log to `<log_dir>/<process>.log` (`bastion serve` sets it).
    log_dir: Path | None
    # The append-only log of audit checkpoints, outside the database (docs/audit.md).
    audit_checkpoint_log: Path
    # The demo shop on the API's origin (`bastion serve --demo`): off unless asked for.
    demo: bool
    # `module:attribute` import paths of the outbox relay's in-process subscribers.
    subscribers: tuple[str, ...]
    # The event bus the relay also publishes every event to: none, either or both (ADR 24).
    nats: NatsBus | None
    kafka: KafkaBus | None
    # The vault's browser origin (hosted card fields, bastion.js, tokens) and its
    # internal mTLS listener (token exchange, forwarding), which only the API reaches.
    vault_public_url: str
    vault_internal_url: str
    vault_max_body_bytes: int
    # Tokenizations per second (and burst) from one client IP; a key's own bucket is the
    # larger `rate_limit_*`, so one client cannot use up a shop's budget.
    vault_tokenize_per_ip_per_s: int
    vault_tokenize_per_ip_burst: int
    # Card testing (vault/card_testing.py): counted attempts within its window per client IP
    # or device, and refused cards per publishable key, before tokenization pauses.
    vault_card_testing_per_client: int
    vault_card_testing_per_key: int
    # Where the key-encryption keys live: `local` (key files) or `pkcs11` (an HSM).
    vault_keyring: str
    pkcs11_module: str | None
    pkcs11_token_label: str | None
    pkcs11_pin: str | None
    # Live-mode cards under the local keyring only when an operator said so explicitly.
    vault_local_keyring_in_live: bool
    # Processor connectors the vault may forward card data to: name -> base URL.
    vault_connectors: dict[str, str]
    # Connectors pinned to a CA of their own: name -> CA bundle; the system's CAs do not count.
    vault_connector_cas: dict[str, Path]
    vault_forward_timeout_s: float
    # The sandbox acquirer: where its HTTPS listener is, and how long a call to it may take.
    acquirer_url: str
    acquirer_timeout_s: float
    # Its chaos for tests (docs/payments.md): off unless a seed is set.
    acquirer_chaos: "AcquirerChaos | None"
    # The API the acquirer sends its notifications to (None: `off`, kept and not sent).
    acquirer_notify_url: str | None
    # How long the sandbox issuer keeps submitted dispute evidence in review before it decides.
    acquirer_dispute_review_s: int
    # Whether confirms are assessed by the risk engine (off: every charge `not_assessed`).
    risk_engine: bool
    # A risk assessment's time budget for merchants that set none (docs/risk.md, Time budget).
    risk_budget_ms: int
    # Where the velocity counters are: a Redis URL, or None for PostgreSQL (ADR 22).
    risk_velocity_redis_url: str | None
    # Where trained fraud models' files are kept, and how often a deciding process looks at the
    # registry for a new champion or challenger (docs/risk-ml.md, Serving).
    risk_models_dir: Path
    risk_model_refresh_s: int
    # A MaxMind-format city database (GeoLite2, DB-IP); None: the one the package ships.
    geoip_database: Path | None
    # Impossible travel: faster than this over at least that far (docs/risk.md, Locations).
    risk_travel_kmh: int
    risk_travel_min_km: int
    # The webhook sender (docs/webhooks.md): deliveries in flight per worker, and per endpoint.
    webhook_in_flight_max: int
    webhook_per_endpoint_max: int
    # How far each retry delay is spread either way, in percent.
    webhook_jitter_percent: int
    # An egress proxy (HTTP CONNECT, smokescreen-style) every delivery goes through; None: direct.
    webhook_proxy_url: str | None

    def log_file(self, process: str) -> Path | None:
        return self.log_dir / f"{process}.log" if self.log_dir is not None else None

    @classmethod
    def from_env(cls) -> "Settings":
        prefix = os.environ.get("BASTION_DB_ROLE_PREFIX", "bastion")
        if not prefix.isidentifier() or not prefix.islower() or len(prefix) > 40:
            raise ConfigurationError("BASTION_DB_ROLE_PREFIX must be a lower-case identifier of at most 40 characters")
        data_dir = Path(os.environ.get("BASTION_DATA_DIR", ".bastion")).resolve()
        acquirer_url = _origin("BASTION_ACQUIRER_URL", "https://127.0.0.1:8003")
        connectors = {SANDBOX_CONNECTOR: acquirer_url, **_connectors(os.environ.get("BASTION_VAULT_CONNECTORS", ""))}
        connector_cas = {
            SANDBOX_CONNECTOR: data_dir / "certs" / "ca.pem",
            **_connector_cas(os.environ.get("BASTION_VAULT_CONNECTOR_CAS", ""), connectors),
        }
        return cls(
            data_dir=data_dir,
            database_url=os.environ.get("BASTION_DATABASE_URL") or None,
            db_role_prefix=prefix,
            db_pool_size=_int("BASTION_DB_POOL_SIZE", 20, minimum=1, maximum=200),
            max_body_bytes=_int("BASTION_MAX_BODY_BYTES", 262_144, minimum=1_024, maximum=16_777_216),
            max_batch_body_bytes=_int("BASTION_MAX_BATCH_BODY_BYTES", 16_777_216, minimum=1_024, maximum=67_108_864),
            rate_limit_per_s=_int("BASTION_RATE_LIMIT_PER_S", 100, minimum=1, maximum=1_000_000),
            rate_limit_burst=_int("BASTION_RATE_LIMIT_BURST", 200, minimum=1, maximum=1_000_000),
            idempotency_ttl_s=_int("BASTION_IDEMPOTENCY_TTL_S", 86_400, minimum=86_400, maximum=30 * 86_400),
            idempotency_hold_timeout_s=_int("BASTION_IDEMPOTENCY_HOLD_TIMEOUT_S", 90, minimum=1, maximum=3_600),
            idempotency_resume_interval_s=_int("BASTION_IDEMPOTENCY_RESUME_INTERVAL_S", 30, minimum=1, maximum=3_600),
            auth_cache_ttl_s=_int("BASTION_AUTH_CACHE_TTL_S", 10, minimum=0, maximum=300),
            log_level=os.environ.get("BASTION_LOG_LEVEL", "info"),
            log_dir=Path(os.environ["BASTION_LOG_DIR"]).resolve() if os.environ.get("BASTION_LOG_DIR") else None,
            audit_checkpoint_log=Path(
                os.environ.get("BASTION_AUDIT_CHECKPOINT_LOG") or data_dir / "audit" / "checkpoints.log"
            ).resolve(),
            demo=_choice("BASTION_DEMO", "off", ("off", "on")) == "on",
            subscribers=tuple(path.strip() for path in os.environ.get("BASTION_SUBSCRIBERS", "").split(",") if path.strip()),
            nats=NatsBus.from_env(),
            kafka=KafkaBus.from_env(),
            vault_public_url=_origin("BASTION_VAULT_PUBLIC_URL", "http://127.0.0.1:8001"),
            vault_internal_url=_origin("BASTION_VAULT_INTERNAL_URL", "https://127.0.0.1:8002"),
            vault_max_body_bytes=_int("BASTION_VAULT_MAX_BODY_BYTES", 16_384, minimum=1_024, maximum=1_048_576),
            vault_tokenize_per_ip_per_s=_int("BASTION_VAULT_TOKENIZE_PER_IP_PER_S", 2, minimum=1, maximum=1_000_000),
            vault_tokenize_per_ip_burst=_int("BASTION_VAULT_TOKENIZE_PER_IP_BURST", 20, minimum=1, maximum=1_000_000),
            vault_card_testing_per_client=_int("BASTION_VAULT_CARD_TESTING_PER_CLIENT", 20, minimum=1, maximum=1_000_000),
            vault_card_testing_per_key=_int("BASTION_VAULT_CARD_TESTING_PER_KEY", 500, minimum=1, maximum=1_000_000),
            vault_keyring=_choice("BASTION_VAULT_KEYRING", "local", ("local", "pkcs11")),
            pkcs11_module=os.environ.get("BASTION_PKCS11_MODULE") or None,
            pkcs11_token_label=os.environ.get("BASTION_PKCS11_TOKEN_LABEL") or None,
            pkcs11_pin=os.environ.get("BASTION_PKCS11_PIN") or None,
            vault_local_keyring_in_live=_choice("BASTION_VAULT_LOCAL_KEYRING_IN_LIVE", "refuse", ("refuse", "allow")) == "allow",
            vault_connectors=connectors,
            vault_connector_cas=connector_cas,
            vault_forward_timeout_s=_int("BASTION_VAULT_FORWARD_TIMEOUT_MS", 10_000, minimum=100, maximum=60_000) / 1000,
            acquirer_url=acquirer_url,
            acquirer_timeout_s=_int("BASTION_ACQUIRER_TIMEOUT_MS", 5_000, minimum=100, maximum=60_000) / 1000,
            acquirer_chaos=AcquirerChaos.from_env(),
            acquirer_notify_url=None
            if os.environ.get("BASTION_ACQUIRER_NOTIFY_URL") == "off"
            else _origin("BASTION_ACQUIRER_NOTIFY_URL", "http://127.0.0.1:8000"),
            acquirer_dispute_review_s=_int("BASTION_ACQUIRER_DISPUTE_REVIEW_S", 5, minimum=0, maximum=86_400),
            risk_engine=_choice("BASTION_RISK_ENGINE", "on", ("on", "off")) == "on",
            risk_budget_ms=_int("BASTION_RISK_BUDGET_MS", 50, minimum=1, maximum=10_000),
            risk_velocity_redis_url=_redis_url("BASTION_RISK_VELOCITY_REDIS_URL"),
            risk_models_dir=Path(os.environ.get("BASTION_RISK_MODELS_DIR") or data_dir / "risk-models").resolve(),
            risk_model_refresh_s=_int("BASTION_RISK_MODEL_REFRESH_S", 5, minimum=0, maximum=3_600),
            geoip_database=Path(os.environ["BASTION_GEOIP_DATABASE"]).resolve()
            if os.environ.get("BASTION_GEOIP_DATABASE")
            else None,
            risk_travel_kmh=_int("BASTION_RISK_TRAVEL_KMH", 900, minimum=1, maximum=100_000),
            risk_travel_min_km=_int("BASTION_RISK_TRAVEL_MIN_KM", 50, minimum=0, maximum=20_000),
            webhook_in_flight_max=_int("BASTION_WEBHOOK_IN_FLIGHT_MAX", 128, minimum=1, maximum=4_096),
            webhook_per_endpoint_max=_int("BASTION_WEBHOOK_PER_ENDPOINT_MAX", 8, minimum=1, maximum=256),
            webhook_jitter_percent=_int("BASTION_WEBHOOK_JITTER_PERCENT", 10, minimum=0, maximum=50),
            webhook_proxy_url=_proxy_url("BASTION_WEBHOOK_PROXY_URL"),
        )
