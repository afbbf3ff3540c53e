"""Recording audit rows. Each row is written in the caller's unit of work, with the other rows
of that unit in one statement just before it commits: it commits with the change it describes
or not at all."""

import uuid
from collections.abc import Mapping

from bastion.audit import repository
from bastion.platform.db import UnitOfWork
from bastion.platform.redaction import redact_value


def record(
    uow: UnitOfWork,
    *,
    action_type: str,
    resource_type: str,
    resource_id: str,
    before: Mapping[str, object] | None,
    after: Mapping[str, object] | None,
) -> None:
    uow.write_at_commit(
        repository.insert_events,
        {
            "id": uuid.uuid4(),
            "merchant_id": uow.tenant.merchant_id,
            "livemode": uow.tenant.livemode,
            "actor": uow.actor.id,
            "action_type": action_type,
            "resource_type": resource_type,
            "resource_id": resource_id,
            "before_state": redact_value(before),
            "after_state": redact_value(after),
            "ip_address": uow.actor.ip_address,
            "device_id": uow.actor.device_id,
            "request_id": uow.actor.request_id,
            "created_at": uow.now(),
        },
    )
