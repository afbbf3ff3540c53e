"""Prometheus metrics. One registry per process, so tests can build apps side by side; and
the token a scraper presents to the API's `/metrics`."""

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram

from bastion.kernel.errors import ConfigurationError
from bastion.platform.secret_files import read_secret, write_secret

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class HttpMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "bastion_http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bastion_http_request_duration_seconds",
            "HTTP request latency by route and status",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, duration_s: float) -> None:
        labels = (method, route, str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(duration_s)


def metrics_token_path(data_dir: Path) -> Path:
    return data_dir / "secrets" / "metrics.token"


def create_metrics_token(data_dir: Path) -> None:
    """The API's scrape token, made once at install: 43 URL-safe characters (256 bits), 0600."""
    path = metrics_token_path(data_dir)
    if not path.exists():
        write_secret(path, secrets.token_urlsafe(32).encode())


def read_metrics_token(data_dir: Path) -> bytes:
    path = metrics_token_path(data_dir)
    if not path.exists():
        raise ConfigurationError(f"{path} is missing: run `bastion migrate` to create the metrics token")
    return read_secret(path).strip()
