"""Stripe's `expand`: an answer's ids replaced by the objects they name, read in the same unit of
work. Each object states the fields it expands; anything else is refused by the request's schema,
naming `expand[i]`."""

from collections.abc import Awaitable, Callable, Mapping, Sequence

from bastion import customers
from bastion.kernel.errors import InvariantViolated
from bastion.payments import charges, intents, service
from bastion.platform.db import UnitOfWork

_Loader = Callable[[UnitOfWork, str], Awaitable[Mapping[str, object]]]
_LOADERS: dict[str, _Loader] = {
    "customer": customers.retrieve_customer,
    "payment_method": service.retrieve_payment_method,
    "latest_charge": charges.retrieve_charge,
    "charge": charges.retrieve_charge,
    "payment_intent": intents.retrieve_intent,
}


async def expanded(uow: UnitOfWork, resource: Mapping[str, object], fields: Sequence[str]) -> dict[str, object]:
    """`resource` with each of `fields` that holds an id replaced by its object (null stays null)."""
    answer = dict(resource)
    for field in dict.fromkeys(fields):
        value = answer.get(field)
        if isinstance(value, str):
            answer[field] = await _LOADERS[field](uow, value)
    return answer


async def expanded_list(uow: UnitOfWork, page: Mapping[str, object], fields: Sequence[str]) -> dict[str, object]:
    """A list with `fields` (`data.customer`...) expanded on each of its objects: a query per
    field of each object, at most 100 objects a page."""
    answer = dict(page)
    if fields:
        objects = page["data"]
        if not isinstance(objects, list):
            raise InvariantViolated("a list's data is a list")
        on_each = [field.removeprefix("data.") for field in fields]
        answer["data"] = [await expanded(uow, item, on_each) for item in objects]
    return answer
