"""The customers service builds exactly the resources its routes document (ADR 11)."""

from datetime import UTC, datetime

from bastion.customers import service
from bastion.customers.resources import Customer, CustomerList, DeletedCustomer
from bastion.customers.routes import router
from tests.support.resources import check_resource, documented_properties

CREATED_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
ROW = {
    "id": "cus_0000000000000000000000000001",
    "merchant_id": "mer_0000000000000000000000000001",
    "livemode": False,
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "phone": None,
    "description": None,
    "metadata": {"order": "42"},
    "created_at": CREATED_AT,
    "updated_at": CREATED_AT,
    "deleted_at": None,
}


def test_customer_resource() -> None:
    result = service.customer_resource(ROW)
    check_resource(Customer, result, documented_properties(router)["Customer"])
    assert (result["id"], result["created"]) == (ROW["id"], int(CREATED_AT.timestamp()))


def test_deleted_customer_resource() -> None:
    result = service.deleted_customer_resource("cus_0000000000000000000000000001")
    check_resource(DeletedCustomer, result, documented_properties(router)["DeletedCustomer"])


def test_customer_list() -> None:
    result = service.customer_list([ROW], has_more=True)
    check_resource(CustomerList, result, documented_properties(router)["CustomerList"])
    assert result == {"object": "list", "url": "/v1/customers", "data": [service.customer_resource(ROW)], "has_more": True}
