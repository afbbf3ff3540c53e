"""The events the payments context emits; bootstrap registers them with the outbox."""

PAYMENT_METHOD_CREATED = "payment_method.created"
PAYMENT_INTENT_CREATED = "payment_intent.created"
PAYMENT_INTENT_REQUIRES_ACTION = "payment_intent.requires_action"
PAYMENT_INTENT_AMOUNT_CAPTURABLE_UPDATED = "payment_intent.amount_capturable_updated"
PAYMENT_INTENT_SUCCEEDED = "payment_intent.succeeded"
PAYMENT_INTENT_PAYMENT_FAILED = "payment_intent.payment_failed"
PAYMENT_INTENT_CANCELED = "payment_intent.canceled"
CHARGE_SUCCEEDED = "charge.succeeded"
CHARGE_FAILED = "charge.failed"
CHARGE_CAPTURED = "charge.captured"
CHARGE_REFUNDED = "charge.refunded"
REFUND_CREATED = "refund.created"
REFUND_UPDATED = "refund.updated"
CHARGE_DISPUTE_CREATED = "charge.dispute.created"
CHARGE_DISPUTE_UPDATED = "charge.dispute.updated"
CHARGE_DISPUTE_CLOSED = "charge.dispute.closed"
REVIEW_OPENED = "review.opened"
REVIEW_CLOSED = "review.closed"

EVENT_TYPES = frozenset(
    {
        PAYMENT_METHOD_CREATED,
        PAYMENT_INTENT_CREATED,
        PAYMENT_INTENT_REQUIRES_ACTION,
        PAYMENT_INTENT_AMOUNT_CAPTURABLE_UPDATED,
        PAYMENT_INTENT_SUCCEEDED,
        PAYMENT_INTENT_PAYMENT_FAILED,
        PAYMENT_INTENT_CANCELED,
        CHARGE_SUCCEEDED,
        CHARGE_FAILED,
        CHARGE_CAPTURED,
        CHARGE_REFUNDED,
        REFUND_CREATED,
        REFUND_UPDATED,
        CHARGE_DISPUTE_CREATED,
        CHARGE_DISPUTE_UPDATED,
        CHARGE_DISPUTE_CLOSED,
        REVIEW_OPENED,
        REVIEW_CLOSED,
    }
)
