"""The relay's subscriber that turns each event into a delivery to every endpoint of its
merchant and mode whose `enabled_events` select it. It runs in the relay's transaction that
holds its inbox row, so each (endpoint, event) gets exactly one delivery however often the
relay hands the event over; the unique (endpoint, event) pair guards it a second time."""

from bastion.events import Event
from bastion.kernel.clock import Clock
from bastion.kernel.ids import new_id
from bastion.platform.db import Connection, Tenant
from bastion.webhooks import repository
from bastion.webhooks.domain import subscribed
from bastion.webhooks.service import DELIVERY_PREFIX


class WebhookFanout:
    name = "webhooks"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def handle(self, connection: Connection, event: Event) -> None:
        subject = event["data"]["object"]
        # An event about an endpoint (its dead letters, its disabling) goes to the others only:
        # to itself it would be one more delivery it fails, for ever.
        endpoints = [
            row
            for row in await repository.fanout_endpoints(connection, event["id"])
            if subscribed(row["enabled_events"], event["type"]) and row["id"] not in (subject.get("id"), subject.get("endpoint"))
        ]
        if not endpoints:
            return
        object_id = subject.get("id")
        await repository.insert_deliveries(
            connection,
            delivery_ids=[new_id(DELIVERY_PREFIX) for _ in endpoints],
            endpoint_ids=[row["id"] for row in endpoints],
            tenant=Tenant(endpoints[0]["merchant_id"], event["livemode"]),
            event_id=event["id"],
            event_type=event["type"],
            object_id=object_id if isinstance(object_id, str) else None,
            created_at=self._clock.now(),
        )
