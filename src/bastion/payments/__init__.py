"""Payments: payment methods now; intents, refunds, disputes and payouts next."""

from bastion.payments.events import EVENT_TYPES

__all__ = ["EVENT_TYPES"]
