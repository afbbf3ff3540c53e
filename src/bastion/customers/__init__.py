"""Customers: the people and companies a merchant charges."""

from bastion.customers.events import EVENT_TYPES
from bastion.customers.resources import Customer, DeletedCustomer
from bastion.customers.service import live_customer, retrieve_customer

__all__ = ["EVENT_TYPES", "Customer", "DeletedCustomer", "live_customer", "retrieve_customer"]
