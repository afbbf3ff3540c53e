from typing import Annotated

from fastapi import Query

from bastion.kernel.errors import InvalidRequest
from bastion.platform.pagination import LIMIT_DEFAULT, LIMIT_MAX, PageRequest

_CURSOR_LENGTH_MAX = 64


def page_request(
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX, description=f"1 to {LIMIT_MAX} objects per page")] = LIMIT_DEFAULT,
    starting_after: Annotated[
        str | None, Query(max_length=_CURSOR_LENGTH_MAX, description="Id of the last object of the previous page")
    ] = None,
    ending_before: Annotated[
        str | None, Query(max_length=_CURSOR_LENGTH_MAX, description="Id of the first object of the next page")
    ] = None,
) -> PageRequest:
    if starting_after is not None and ending_before is not None:
        raise InvalidRequest("Use at most one of starting_after and ending_before", param="ending_before")
    return PageRequest(limit=limit, starting_after=starting_after, ending_before=ending_before)
