"""Reviews: payments the risk engine sent to review (its `review` action). The attempt is
authorized without capture and a review opened with it; the merchant approves it (the capture
proceeds) or rejects it (the authorization is voided, or the payment refunded): see
`review_decisions.py`. Every change is audited and announced (docs/risk.md, Reviews)."""

from bastion import audit, events, risk
from bastion.kernel.clock import unix_seconds
from bastion.kernel.errors import InvariantViolated, ResourceMissing
from bastion.kernel.ids import is_id, new_id
from bastion.payments import repository
from bastion.payments.errors import ReviewClosed
from bastion.payments.events import REVIEW_CLOSED, REVIEW_OPENED
from bastion.payments.resources import Review, ReviewList
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.platform.pagination import PageRequest, check_cursors


def review_resource(row: AnyRow) -> Review:
    return Review(
        id=row["id"],
        object="review",
        charge=row["charge_id"],
        payment_intent=row["payment_intent_id"],
        open=row["open"],
        opened_reason="rule",
        reason="rule" if row["open"] else row["closed_reason"],
        closed_reason=row["closed_reason"],
        rule=row["rule_id"],
        created=unix_seconds(row["created_at"]),
        livemode=row["livemode"],
    )


async def open_review(uow: UnitOfWork, charge: AnyRow, decision: risk.Decision) -> None:
    row = await repository.insert_review(
        uow.connection,
        uow.tenant,
        {
            "id": new_id("prv"),
            "charge_id": charge["id"],
            "payment_intent_id": charge["payment_intent_id"],
            "decision_id": decision.id,
            "rule_id": None if decision.rule is None else decision.rule["id"],
            "created_at": uow.now(),
        },
    )
    resource = review_resource(row)
    audit.record(uow, action_type="review.open", resource_type="review", resource_id=row["id"], before=None, after=resource)
    events.emit(uow, REVIEW_OPENED, resource)


async def review_row(uow: UnitOfWork, review_id: str, *, for_update: bool = False, must_be_open: bool = False) -> AnyRow:
    row = (
        await repository.get_review(uow.connection, uow.tenant, review_id, for_update=for_update)
        if is_id(review_id, "prv")
        else None
    )
    if row is None:
        raise ResourceMissing(f"No such review: '{review_id}'", param="id")
    if must_be_open and not row["open"]:
        raise ReviewClosed(f"The review {review_id} is closed already ({row['closed_reason']}).", param="id")
    return row


async def retrieve_review(uow: UnitOfWork, review_id: str) -> Review:
    return review_resource(await review_row(uow, review_id))


async def list_reviews(uow: UnitOfWork, request: PageRequest, *, is_open: bool | None) -> ReviewList:
    await check_cursors(
        request, prefix="prv", noun="review", exists=lambda cursor: repository.review_exists(uow.connection, uow.tenant, cursor)
    )
    page = await repository.page_reviews(uow.connection, uow.tenant, request, is_open)
    return ReviewList(object="list", url="/v1/reviews", data=[review_resource(row) for row in page.rows], has_more=page.has_more)


async def close_review(uow: UnitOfWork, review_id: str, reason: str) -> Review:
    """Close the review as `reason` (approved, refunded_as_fraud), by the caller."""
    before = await review_row(uow, review_id, for_update=True, must_be_open=True)
    row = await repository.close_review(
        uow.connection, uow.tenant, review_id, reason=reason, closed_by=uow.actor.id, at=uow.now()
    )
    if row is None:
        raise InvariantViolated("a review locked open closes")
    resource = review_resource(row)
    audit.record(
        uow,
        action_type=f"review.{reason}",
        resource_type="review",
        resource_id=review_id,
        before=review_resource(before),
        after=resource,
    )
    events.emit(uow, REVIEW_CLOSED, resource)
    return resource
