from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from bastion.kernel.errors import InvariantViolated
from bastion.platform.http.errors import CursorsExclusive, ParameterUnknown
from bastion.platform.http.schemas import id_schema
from bastion.platform.pagination import LIMIT_DEFAULT, LIMIT_MAX, PageRequest

_CURSOR_LENGTH_MAX = 64


def _declared_query_params(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _declared_query_params(dependency)
    return names


def reject_unknown_query_params(request: Request) -> None:
    """Dependency: like Stripe, refuse what the route does not understand: a misspelt filter
    (`?emial=`) would otherwise silently return the unfiltered list."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        raise InvariantViolated("page_request runs only as a dependency of an API route")
    declared = _declared_query_params(route.dependant)
    for name in request.query_params:
        if name not in declared:
            raise ParameterUnknown(f"Received unknown parameter: {name}", param=name)


def page_request(prefix: str) -> Callable[..., PageRequest]:
    """Dependency for a list of objects with ids `prefix_...`: the page size and the cursors,
    which must be ids of that list."""
    cursor_schema = id_schema(prefix)

    def page(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description=f"1 to {LIMIT_MAX} objects per page")] = LIMIT_DEFAULT,
        starting_after: Annotated[
            str | None,
            Query(
                max_length=_CURSOR_LENGTH_MAX,
                json_schema_extra=cursor_schema,
                description="Id of the last object of the previous page",
            ),
        ] = None,
        ending_before: Annotated[
            str | None,
            Query(
                max_length=_CURSOR_LENGTH_MAX,
                json_schema_extra=cursor_schema,
                description="Id of the first object of the next page",
            ),
        ] = None,
    ) -> PageRequest:
        reject_unknown_query_params(request)
        if starting_after is not None and ending_before is not None:
            raise CursorsExclusive("Use at most one of starting_after and ending_before", param="ending_before")
        return PageRequest(limit=limit, starting_after=starting_after, ending_before=ending_before)

    return page


# Unix seconds a `created` filter may name: from the epoch to the year 9999.
_UNIX_SECONDS_MAX = 253_402_300_799


@dataclass(frozen=True, slots=True)
class CreatedRange:
    """Stripe's `created[gte]` and `created[lte]` filters, in unix seconds, both inclusive."""

    gte: int | None = None
    lte: int | None = None


def created_range(
    gte: Annotated[
        int | None, Query(alias="created[gte]", ge=0, le=_UNIX_SECONDS_MAX, description="Created at or after (unix seconds)")
    ] = None,
    lte: Annotated[
        int | None, Query(alias="created[lte]", ge=0, le=_UNIX_SECONDS_MAX, description="Created at or before (unix seconds)")
    ] = None,
) -> CreatedRange:
    """Dependency: a list's `created` filter."""
    return CreatedRange(gte=gte, lte=lte)
