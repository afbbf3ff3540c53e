"""Payments: payment methods and what merchants pay; intents, refunds, disputes and payouts next."""

from bastion.payments.domain import DEFAULT_BASIS_POINTS
from bastion.payments.events import EVENT_TYPES
from bastion.payments.pricing import price_in, prices, set_price
from bastion.payments.repository import fraud_charges

__all__ = ["DEFAULT_BASIS_POINTS", "EVENT_TYPES", "fraud_charges", "price_in", "prices", "set_price"]
