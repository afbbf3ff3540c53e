"""The event bus's brokers for the events tests: one of each per session, each test on
streams, subjects and topics of its own names."""

from collections.abc import AsyncIterator, Iterator

import pytest

from bastion.platform.settings import KafkaBus, NatsBus
from tests.support.brokers import delete_streams, running_kafka, running_nats, unique_name

# Short enough that a test of a broker that is down takes a second, long enough for 2 busy cores.
PUBLISH_TIMEOUT_S = 2.0


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_nats(tmp_path_factory.mktemp("nats")) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_kafka(tmp_path_factory.mktemp("kafka")) as servers:
        yield servers


@pytest.fixture
async def nats_bus(nats_url: str) -> AsyncIterator[NatsBus]:
    """Streams and subjects of the test's own, deleted after it."""
    name = unique_name()
    bus = NatsBus(
        servers=(nats_url,),
        stream=f"{name.upper()}_EVENTS",
        dlq_stream=f"{name.upper()}_DLQ",
        subject_prefix=name,
        duplicate_window_s=120,
        max_age_s=3_600,
        publish_timeout_s=PUBLISH_TIMEOUT_S,
    )
    yield bus
    await delete_streams(bus)


@pytest.fixture
def kafka_bus(kafka_servers: str) -> KafkaBus:
    """One topic of the test's own (the broker keeps it in memory only, for the session)."""
    return KafkaBus(bootstrap_servers=kafka_servers, topic=f"{unique_name()}.events", publish_timeout_s=PUBLISH_TIMEOUT_S)
