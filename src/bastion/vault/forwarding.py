"""Pure rules of a forward: what a request template may contain, and how a processor's JSON
answer is read into the fields its caller asked for.

Card placeholders go in the body only. A header value is what proxies, load balancers and
servers log most readily, and no processor Bastion connects to takes card data in one.
"""

import re
from collections.abc import Mapping
from typing import Any

from bastion.kernel.errors import InvalidRequest

# Request headers a connector may be sent: content negotiation, the processor's own
# authentication, idempotency and API versions. Anything else (Host, Cookie, Forwarded,
# X-Forwarded-*, hop-by-hop headers) could steer the request or a proxy on its way.
FORWARD_HEADERS_ALLOWED = frozenset(
    {
        "accept",
        "authorization",
        "content-type",
        "idempotency-key",
        "user-agent",
        "x-request-id",
        "x-api-key",
        "stripe-version",
        "stripe-account",
        "braintree-version",
        # The version of Braintree's XML API a request and its answer are written in: the
        # `braintree` package sends it on every request, and reads answers as that version.
        "x-apiversion",
    }
)
CARD_PLACEHOLDER = re.compile(r"\{\{\s*card\.(number|exp_month|exp_year|cvc|name)\s*\}\}")
# What `{{` and `card.` look like even when they fail the exact pattern: refused outside the body too.
_PLACEHOLDER_LIKE = re.compile(r"\{\{.*?card\.", re.IGNORECASE | re.DOTALL)


def check_template(path: str, headers: Mapping[str, str]) -> None:
    """A 400 naming the first header that is not allowlisted, or the first place outside the
    body that carries a card placeholder."""
    if _PLACEHOLDER_LIKE.search(path):
        raise InvalidRequest("Card placeholders go in the request body only.", param="request[path]")
    for name, value in headers.items():
        if name.lower() not in FORWARD_HEADERS_ALLOWED:
            raise InvalidRequest(
                f"The header {name!r} is not forwarded to processors; allowed: {', '.join(sorted(FORWARD_HEADERS_ALLOWED))}.",
                param=f"request[headers][{name}]",
            )
        if _PLACEHOLDER_LIKE.search(value):
            raise InvalidRequest("Card placeholders go in the request body only.", param=f"request[headers][{name}]")


def placeholders(body: str) -> set[str]:
    """The card fields the body asks for (`number`, `cvc`, ...)."""
    return {match.group(1) for match in CARD_PLACEHOLDER.finditer(body)}


def fill(body: str, fields: Mapping[str, str]) -> str:
    return CARD_PLACEHOLDER.sub(lambda match: fields[match.group(1)], body)


def pointed(document: Any, pointer: str) -> Any:
    """The value at a JSON Pointer (RFC 6901) in `document`, or None where there is none."""
    if pointer == "":
        return document
    for escaped in pointer[1:].split("/"):
        token = escaped.replace("~1", "/").replace("~0", "~")
        if isinstance(document, dict):
            document = document.get(token)
        elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        else:
            return None
    return document
