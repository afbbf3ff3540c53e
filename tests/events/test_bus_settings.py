"""The event bus's settings: none by default (the embedded relay alone), each one validated
with a one-line ConfigurationError, and the CLI's answer when no bus is configured."""

import pytest
from typer.testing import CliRunner

from bastion.cli.main import app
from bastion.events import bus_publishers
from bastion.kernel.errors import ConfigurationError
from bastion.platform.settings import KafkaBus, NatsBus, Settings

_BUS_SETTINGS = (
    "BASTION_NATS_URL",
    "BASTION_NATS_STREAM",
    "BASTION_NATS_DLQ_STREAM",
    "BASTION_NATS_SUBJECT_PREFIX",
    "BASTION_NATS_DUPLICATE_WINDOW_S",
    "BASTION_NATS_MAX_AGE_S",
    "BASTION_KAFKA_BOOTSTRAP_SERVERS",
    "BASTION_KAFKA_TOPIC",
    "BASTION_BUS_PUBLISH_TIMEOUT_MS",
)


@pytest.fixture(autouse=True)
def no_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _BUS_SETTINGS:
        monkeypatch.delenv(name, raising=False)


def test_no_bus_by_default() -> None:
    settings = Settings.from_env()
    assert (settings.nats, settings.kafka) == (None, None)
    assert bus_publishers(settings) == []


def test_both_buses_with_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BASTION_NATS_URL", "nats://user:secret@127.0.0.1:4222, tls://nats.example:4222")
    monkeypatch.setenv("BASTION_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,kafka.example:9093")
    settings = Settings.from_env()
    assert settings.nats == NatsBus(
        servers=("nats://user:secret@127.0.0.1:4222", "tls://nats.example:4222"),
        stream="BASTION_EVENTS",
        dlq_stream="BASTION_DLQ",
        subject_prefix="bastion",
        duplicate_window_s=120,
        max_age_s=7 * 86_400,
        publish_timeout_s=5.0,
    )
    assert settings.kafka == KafkaBus(
        bootstrap_servers="127.0.0.1:9092,kafka.example:9093", topic="bastion.events", publish_timeout_s=5.0
    )
    assert [publisher.name for publisher in bus_publishers(settings)] == ["bus.nats", "bus.kafka"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BASTION_NATS_URL", "http://user:secret@127.0.0.1:4222", "got scheme 'http'"),
        ("BASTION_NATS_STREAM", "BASTION.EVENTS", "BASTION_NATS_STREAM must be 1-64 letters"),
        ("BASTION_NATS_DLQ_STREAM", "BASTION_EVENTS", "must differ from BASTION_NATS_STREAM"),
        ("BASTION_NATS_SUBJECT_PREFIX", "bastion.*", "BASTION_NATS_SUBJECT_PREFIX must be dot-separated tokens"),
        ("BASTION_NATS_SUBJECT_PREFIX", "bastion..x", "BASTION_NATS_SUBJECT_PREFIX must be dot-separated tokens"),
        ("BASTION_NATS_DUPLICATE_WINDOW_S", "0", "BASTION_NATS_DUPLICATE_WINDOW_S must be between 1 and 86400"),
        ("BASTION_BUS_PUBLISH_TIMEOUT_MS", "soon", "BASTION_BUS_PUBLISH_TIMEOUT_MS must be an integer"),
        ("BASTION_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1", "expected host:port, got '127.0.0.1'"),
        ("BASTION_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:99999", "expected host:port"),
        ("BASTION_KAFKA_TOPIC", "bastion events", "BASTION_KAFKA_TOPIC must be a topic name"),
        ("BASTION_KAFKA_TOPIC", "{object}.{object}", "with {object} at most once"),
        ("BASTION_KAFKA_TOPIC", "bastion.{type}", "BASTION_KAFKA_TOPIC must be a topic name"),
    ],
)
def test_bus_settings_are_checked(monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str) -> None:
    monkeypatch.setenv("BASTION_NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("BASTION_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=message) as raised:
        Settings.from_env()
    assert "secret" not in raised.value.message


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["list"], "error: no event bus is configured: set BASTION_NATS_URL (docs/events.md)"),
        (["redrive", "--all"], "error: no event bus is configured: set BASTION_NATS_URL (docs/events.md)"),
        (["redrive"], "error: say which: --event evt_... or --all"),
        (["redrive", "--all", "--event", "evt_1"], "error: say which: --event evt_... or --all"),
    ],
)
def test_the_dlq_commands_say_what_is_missing(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["events", "dlq", *arguments])
    assert result.exit_code == 1
    assert result.stderr.strip() == message
