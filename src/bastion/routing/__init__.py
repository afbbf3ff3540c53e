"""Routing: which of a merchant's connector accounts a payment is sent to, and in which order
the others are tried when it fails in a way that allows failover; the rules are versioned and
their conditions written in the risk engine's language (docs/routing.md)."""

from bastion.routing.domain import RoutedPayment, RoutingPlan, Strategy
from bastion.routing.events import EVENT_TYPES
from bastion.routing.service import plan, prune_outcomes, record_outcome

__all__ = [
    "EVENT_TYPES",
    "RoutedPayment",
    "RoutingPlan",
    "Strategy",
    "plan",
    "prune_outcomes",
    "record_outcome",
]
