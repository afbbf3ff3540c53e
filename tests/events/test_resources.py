"""The events service builds exactly the resources its routes document (ADR 11), and the
payload stored with each event is the documented `data`."""

from datetime import UTC, datetime

from bastion.events import service
from bastion.events.resources import Event, EventData, EventList
from bastion.events.routes import router
from tests.support.resources import check_resource, documented_properties

CUSTOMER = {"id": "cus_0000000000000000000000000001", "object": "customer", "name": "Ada Lovelace"}
ROW = {
    "id": "evt_0000000000000000000000000001",
    "merchant_id": "mer_0000000000000000000000000001",
    "livemode": True,
    "type": "customer.updated",
    "data": {"object": CUSTOMER, "previous_attributes": {"name": None}},
    "request_id": "req_0000000000000000000000000001",
    "created_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    "published_at": None,
}


def test_event_data() -> None:
    # previous_attributes only on updates.
    check_resource(EventData, service.event_data(CUSTOMER, None), ["object"])
    check_resource(EventData, service.event_data(CUSTOMER, {"name": None}), documented_properties(router)["EventData"])


def test_event_resource() -> None:
    result = service.to_resource(ROW)
    documented = documented_properties(router)
    check_resource(Event, result, documented["Event"])
    assert list(result["request"]) == documented["EventRequest"]
    assert result["data"] == ROW["data"]


def test_event_list() -> None:
    result = service.event_list([ROW], has_more=True)
    check_resource(EventList, result, documented_properties(router)["EventList"])
    assert result == {"object": "list", "url": "/v1/events", "data": [service.to_resource(ROW)], "has_more": True}
