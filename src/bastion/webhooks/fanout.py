"""The relay's subscriber that turns each event into a delivery to every endpoint of its
merchant and mode whose `enabled_events` select it. It takes a batch of events in the relay's
transaction that holds their inbox rows, so each (endpoint, event) gets exactly one delivery
however often the relay hands the event over; the unique (endpoint, event) pair guards it a
second time. Two statements a batch, whatever its size."""

from typing import Any

from bastion.events import Event
from bastion.kernel.clock import Clock
from bastion.kernel.ids import new_id
from bastion.platform.db import Connection
from bastion.webhooks import repository
from bastion.webhooks.domain import subscribed
from bastion.webhooks.service import DELIVERY_PREFIX


class WebhookFanout:
    name = "webhooks"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def handle_batch(self, connection: Connection, events: list[Event]) -> None:
        by_id = {event["id"]: event for event in events}
        deliveries: list[dict[str, Any]] = []
        for endpoint in await repository.fanout_endpoints(connection, list(by_id)):
            event = by_id[endpoint["event_id"]]
            subject = event["data"]["object"]
            object_id = subject.get("id")
            # An event about an endpoint (its dead letters, its disabling) goes to the others only:
            # to itself it would be one more delivery it fails, for ever.
            if not subscribed(endpoint["enabled_events"], event["type"]) or endpoint["id"] in (
                object_id,
                subject.get("endpoint"),
            ):
                continue
            deliveries.append(
                {
                    "id": new_id(DELIVERY_PREFIX),
                    "merchant_id": endpoint["merchant_id"],
                    "livemode": event["livemode"],
                    "endpoint_id": endpoint["id"],
                    "event_id": event["id"],
                    "event_type": event["type"],
                    "object_id": object_id if isinstance(object_id, str) else None,
                }
            )
        if deliveries:
            await repository.insert_deliveries(connection, deliveries, self._clock.now())
