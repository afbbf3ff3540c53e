"""Customers: the people and companies a merchant charges."""

from bastion.customers.service import live_customer

__all__ = ["live_customer"]
