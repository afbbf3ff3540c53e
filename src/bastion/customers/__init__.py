"""Customers: the people and companies a merchant charges."""

from bastion.customers.events import EVENT_TYPES
from bastion.customers.service import live_customer

__all__ = ["EVENT_TYPES", "live_customer"]
