"""What a merchant asks of its assessments, per mode: the time budget and the failure policy
past it (docs/risk.md, Time budget)."""

from bastion import audit
from bastion.platform.db import AnyRow, UnitOfWork
from bastion.risk import repository
from bastion.risk.assessment import BUDGET_MS_DEFAULT, FAIL_OPEN
from bastion.risk.resources import RiskSettings
from bastion.risk.schemas import RiskSettingsUpdate


def _resource(row: AnyRow | None, livemode: bool) -> RiskSettings:
    return RiskSettings(
        object="risk.settings",
        budget_ms=BUDGET_MS_DEFAULT if row is None else row["budget_ms"],
        failure_policy=FAIL_OPEN if row is None else row["failure_policy"],
        livemode=livemode,
    )


async def retrieve_settings(uow: UnitOfWork) -> RiskSettings:
    return _resource(await repository.get_settings(uow.connection, uow.tenant), uow.tenant.livemode)


async def update_settings(uow: UnitOfWork, request: RiskSettingsUpdate) -> RiskSettings:
    before = await retrieve_settings(uow)
    budget_ms = before["budget_ms"] if request.budget_ms is None else request.budget_ms
    policy = before["failure_policy"] if request.failure_policy is None else request.failure_policy
    row = await repository.upsert_settings(uow.connection, uow.tenant, budget_ms, policy, uow.now())
    after = _resource(row, uow.tenant.livemode)
    audit.record(
        uow,
        action_type="risk.settings.update",
        resource_type="risk.settings",
        resource_id=uow.tenant.merchant_id,
        before=before,
        after=after,
    )
    return after
