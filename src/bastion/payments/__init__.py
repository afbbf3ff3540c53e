"""Payments: payment methods now; intents, refunds, disputes and payouts next."""
