"""The events context's errors."""

from bastion.kernel.errors import BastionError


class BusUnavailable(BastionError):
    """The event bus (NATS JetStream or Kafka) did not take a message, or did not answer in time:
    the relay retries the event; the CLI prints it."""

    type = "api_error"
    code = "bus_unavailable"
