"""Payments: customers now; payment methods, intents, refunds, disputes and payouts later."""
